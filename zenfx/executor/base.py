"""What every backend shares: the outcome record, the context-manager base, and running one task."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

OK, ERROR, TIMEOUT = "ok", "error", "timeout"


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
