"""What every backend shares: the outcome record, the context-manager base, and running one task."""

from __future__ import annotations

import collections
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

OK, ERROR, TIMEOUT = "ok", "error", "timeout"
MAX_ATTEMPTS = 2  # a dead worker's task is retried once

Job = tuple[int, Any, int]  # (index in the map call, task, attempts so far)


@dataclass
class TaskOutcome:
    """One task's result. ``index`` is its position in the list given to ``map``; ``value`` is what
    ``fn`` returned when ``status == "ok"``; ``error`` a one-line ``"ExcType: message"`` otherwise.
    ``attempts`` counts runs (2 when a dead worker's task was retried)."""

    index: int
    status: str
    value: Any
    error: str | None
    seconds: float
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``"ExcType: first line of the message"``: what a row or a log can hold."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:limit]


def run_task(fn: Callable[[Any, Any], Any], state: Any, task: Any) -> tuple[str, Any, str | None, float]:
    """Run ``fn(state, task)``; an exception is an ``error`` outcome, never the end of the run."""
    t0 = time.perf_counter()
    try:
        value = fn(state, task)
    except Exception as exc:  # noqa: BLE001 - one failing task never sinks the rest
        if os.environ.get("ZENFX_EXECUTOR_DEBUG"):
            import traceback

            traceback.print_exc(file=sys.stderr)
        return ERROR, None, one_line(exc), time.perf_counter() - t0
    return OK, value, None, time.perf_counter() - t0


def limit_address_space(gb: float, *, above_current: bool = False) -> None:
    """Cap this process's address space at ``gb`` GiB (``above_current``: that much more than it
    maps now): a task that would exhaust the machine's memory fails with MemoryError in its own
    outcome instead of waking the kernel's OOM killer on a shared machine. A Ray worker maps Ray's
    object store before it runs anything (~8 GiB of address space on a 24 GiB machine), so its cap
    is counted on top of that."""
    try:
        import resource

        cap = int(gb * 2**30)
        if above_current:
            with open("/proc/self/status") as fh:
                vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
            cap += vm
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except Exception:  # pragma: no cover - a platform without RLIMIT_AS or /proc
        pass


def set_threads(n: int) -> None:
    """One torch thread per worker by default: N workers x M threads on N cores only thrash."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


class Executor:
    """Context manager over warm workers. ``map`` yields ``TaskOutcome`` in completion order and
    may be called many times; ``close`` stops the workers (idempotent)."""

    backend = "?"
    workers = 0

    def map(self, fn: Callable[[Any, Any], Any], tasks: Sequence[Any], *,
            timeout: float | None = None) -> Iterator[TaskOutcome]:
        raise NotImplementedError

    def run(self, fn: Callable[[Any, Any], Any], tasks: Sequence[Any], *,
            timeout: float | None = None) -> list[TaskOutcome]:
        """All outcomes, in task order (convenience over ``map``)."""
        out = sorted(self.map(fn, tasks, timeout=timeout), key=lambda o: o.index)
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort when a caller forgets close()
        try:
            self.close()
        except Exception:
            pass


class MapRun:
    """The state of one ``map`` call on a pool: tasks not yet handed out (a dead worker's task goes
    back to the front), how many outcomes are still due, and the outcome rules every backend shares."""

    def __init__(self, fn: Callable[[Any, Any], Any], tasks: list[Any], timeout: float | None) -> None:
        self.fn, self.timeout = fn, timeout
        self.pending: collections.deque[Job] = collections.deque((i, t, 0) for i, t in enumerate(tasks))
        self.remaining = len(tasks)
        self.init_deaths = 0  # workers that died before saying "ready", in a row (local backend)

    def wait_for(self, busy: Sequence[Any]) -> float | None:
        """Seconds until the nearest deadline among ``busy`` workers (each with ``.started``); None
        when there is no timeout or nobody is busy (wait for the next event, however long)."""
        if self.timeout is None or not busy:
            return None
        return max(0.0, min(w.started + self.timeout for w in busy) - time.perf_counter())

    def overdue(self, worker: Any) -> bool:
        """Whether ``worker`` (``.job``, ``.started``) has run its task past the timeout."""
        return (worker.job is not None and self.timeout is not None
                and time.perf_counter() - worker.started > self.timeout)

    @staticmethod
    def result(job: Job, msg: tuple[str, Any, str | None, float]) -> TaskOutcome:
        """A worker's reply ``(status, value, error, seconds)`` to ``job``."""
        status, value, error, seconds = msg
        return TaskOutcome(job[0], status, value, error, seconds, job[2] + 1)

    def overran(self, job: Job, seconds: float) -> TaskOutcome:
        """``job`` ran past the timeout (its worker is being replaced)."""
        return TaskOutcome(job[0], TIMEOUT, None, f"timeout: no result after {self.timeout:g} s", seconds, job[2] + 1)

    def worker_died(self, job: Job, seconds: float, how: str) -> TaskOutcome | None:
        """``job``'s worker died: queued again once (the result depends only on the task and the init
        state, so a retry elsewhere gives the same value), then an ``error`` naming ``how``."""
        index, task, attempts = job
        if attempts + 1 < MAX_ATTEMPTS:
            self.pending.appendleft((index, task, attempts + 1))
            return None
        return TaskOutcome(index, ERROR, None, f"WorkerDied: {how} on {attempts + 1} attempts", seconds, attempts + 1)


class PoolExecutor(Executor):
    """``map`` over a pool of workers (processes, Ray actors): keep every ready worker busy, turn
    what comes back into outcomes, replace a worker whose task is abandoned. A backend says how its
    pool grows (``_grow``), hands out tasks (``_feed``), waits for and reads events (``_collect``)
    and restarts a busy worker (``_in_flight``, ``_restart``)."""

    _closed = False

    def map(self, fn: Callable[[Any, Any], Any], tasks: Sequence[Any], *,
            timeout: float | None = None) -> Iterator[TaskOutcome]:
        if self._closed:
            raise RuntimeError("executor is closed")
        tasks = list(tasks)
        if not tasks:
            return
        self._grow(len(tasks))
        run = MapRun(fn, tasks, timeout)
        clean = False
        try:
            while run.remaining:
                self._feed(run)
                for o in self._collect(run):  # a list, not a generator: the pool is consistent between yields
                    run.remaining -= 1
                    yield o
            clean = True
        finally:
            if not clean:
                self._abandon()

    def _abandon(self) -> None:
        """Ctrl-C, an error in the caller's loop, or the caller stopped iterating: work in flight is
        lost, so those workers are replaced (on Ctrl-C everything stops)."""
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            self.close()
            return
        for w in self._in_flight():
            self._restart(w)

    def _grow(self, n: int) -> None:
        raise NotImplementedError

    def _feed(self, run: MapRun) -> None:
        raise NotImplementedError

    def _collect(self, run: MapRun) -> list[TaskOutcome]:
        raise NotImplementedError

    def _in_flight(self) -> list[Any]:
        raise NotImplementedError

    def _restart(self, worker: Any) -> None:
        raise NotImplementedError
