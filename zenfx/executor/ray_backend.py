"""The ``ray`` backend: long-lived Ray actors, one per worker, same contract as ``local``.

Each actor runs ``init(init_arg)`` once in its constructor and keeps the result (imports, a cached
search space, a warm model) for every task it serves. A task ships ``fn`` by reference and the task
value (a genome dict, a model name, an architecture record), never a pickled model. The driver
keeps every actor busy and reads results as they come (``ray.wait``):

- an actor that dies mid-task (``ray.kill``, a lost node, a segfault) is replaced and its task is
  retried once on the next free actor: the result is the same because a task's result depends only
  on the task and the init state;
- a task past its timeout has its actor killed and replaced (Ray cannot interrupt a running actor
  method), and is recorded as ``timeout``.

Without an address a local Ray is started sized to the workers (quiet: no dashboard, errors-only
logging, worker output not forwarded); with ``address="auto"`` or ``HOST:PORT`` the driver joins an
existing cluster, whose nodes must have the same zenfx installed (checked when an actor starts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import UsageError
from .base import ERROR, Job, MapRun, PoolExecutor, TaskOutcome, limit_address_space, one_line, run_task, set_threads

INSTALL_HINT = "pip install zenfx[ray]"


def import_ray() -> Any:
    """``ray``, or a one-line ``UsageError`` saying how to get it (exit 2)."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def quiet_driver() -> None:
    """Keep Ray's driver-side error channel off stdout. Ray prints raylet messages (e.g. "A worker
    died or was killed", which every timeout causes: the actor is killed on purpose) on the driver's
    *stdout*, where they would break ``--json``. Outcomes already carry those events; the messages
    are dropped, or sent to stderr with ``ZENFX_RAY_VERBOSE=1``."""
    try:
        import ray._private.worker as w
    except ImportError:  # pragma: no cover - a Ray without this private module
        return
    original = w.print_to_stdstream
    if getattr(original, "_zenfx_quiet", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        if os.environ.get("ZENFX_RAY_VERBOSE"):
            original(dict(data, is_err=True), ignore_prefix)

    to_stderr._zenfx_quiet = True  # type: ignore[attr-defined]
    w.print_to_stdstream = to_stderr


def _check_reachable(address: str) -> None:
    """A quick TCP connect to HOST:PORT: Ray itself retries an unreachable address for minutes."""
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or not host or not port.isdigit():
        return  # a Ray client URL or something Ray parses itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}",
                         hint="start one with `ray start --head`, or drop --ray-address for a local Ray") from None


# Imported by every worker process of a Ray this module starts, before any actor lands on it: Ray
# starts one idle worker per CPU when the driver connects, and an actor is placed on an idle worker,
# so a worker's cold start (torch alone is ~1.5 CPU-s) overlaps the driver's own set-up instead of
# following it. Callers add what their tasks import (the seed's model package, for a search).
PRELOAD = ("torch", "zenfx.executor.base")


def start_ray(workers: int | None = None, address: str | None = None, *, threads_per_worker: int = 1,
              preload: Sequence[str] = ()) -> bool:
    """Join the cluster at ``address`` ("auto" or HOST:PORT), or start a private local Ray sized to
    ``workers`` x ``threads_per_worker`` CPUs (quiet: no dashboard, errors only, worker output not
    forwarded) whose idle workers pre-import ``PRELOAD`` + ``preload``. GPUs are Ray's own count
    of this machine's. Returns False when Ray was already running here (nothing started)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            modules = list(dict.fromkeys([*PRELOAD, *preload]))
            ray.init(num_cpus=(workers or os.cpu_count() or 1) * threads_per_worker,
                     _system_config={"preload_python_modules": modules}, **quiet)
    except ConnectionError as exc:
        if _auth_refused(exc):
            raise UsageError(f"the Ray cluster at {address} refused this driver: its auth token is missing or "
                             "different here",
                             hint="run with RAY_AUTH_MODE=token and the head node's token in RAY_AUTH_TOKEN or "
                                  "~/.ray/auth_token (docs/cluster.md)") from None
        raise UsageError(f"cannot reach a Ray cluster at {address}: {one_line(exc)}",
                         hint="start one with `ray start --head`, or drop --ray-address for a local Ray") from None
    quiet_driver()
    return True


def _auth_refused(exc: BaseException | None) -> bool:
    """Ray >= 2.5x clusters started with `ray start` require a token; a driver without it gets a
    ConnectionError whose cause chain holds an AuthenticationError."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


@contextlib.contextmanager
def ray_session(workers: int | None = None, address: str | None = None, *, threads_per_worker: int = 1,
                preload: Sequence[str] = ()) -> Iterator[None]:
    """Ray running for the block (see ``start_ray``), shut down at its end when this started it. A
    command enters it before its own set-up so that Ray's workers warm up meanwhile; executors made
    inside find Ray running and leave it be."""
    started = start_ray(workers, address, threads_per_worker=threads_per_worker, preload=preload)
    try:
        yield
    finally:
        if started:
            import ray

            if ray.is_initialized():
                ray.shutdown()


def gpu_workers(workers: int, gpus_per_worker: float) -> int:
    """How many of ``workers`` the cluster's GPUs can hold at ``gpus_per_worker`` each: a Ray actor
    asking for a GPU nobody has waits for ever, so the executor starts no more than fit and a
    cluster without GPUs is a one-line error."""
    import ray

    total = float(ray.cluster_resources().get("GPU", 0))
    fit = int(total // gpus_per_worker + 1e-9)
    if fit < 1:
        raise UsageError(f"--device cuda asks each Ray worker for {gpus_per_worker:g} GPU, and the Ray cluster has "
                         f"{total:g} GPUs",
                         hint="start the Ray nodes with GPUs (`ray start --num-gpus N`), or score on cpu")
    return min(workers, fit)


class _Actor:
    """The body of one Ray actor (wrapped with ``ray.remote`` at run time, so that importing this
    module never imports Ray)."""

    def __init__(self, init: Callable[[Any], Any] | None, init_arg: Any, threads: int,
                 memory_limit_gb: float | None = None) -> None:
        set_threads(threads)
        if memory_limit_gb:
            limit_address_space(memory_limit_gb, above_current=True)
        self.state: Any = None
        self.init_error: str | None = None
        if init is not None:
            try:
                self.state = init(init_arg)
            except Exception as exc:  # noqa: BLE001 - reported with every task instead
                self.init_error = f"worker init failed: {one_line(exc)}"
        set_threads(threads)

    def ready(self) -> tuple[int, str, str]:
        import zenfx

        return os.getpid(), socket.gethostname(), zenfx.__version__

    def run(self, fn: Callable[[Any, Any], Any], task: Any) -> tuple[str, Any, str | None, float]:
        if self.init_error is not None:
            return (ERROR, None, self.init_error, 0.0)
        return run_task(fn, self.state, task)


class _Slot:
    """The driver's view of one actor: starting (``ref`` is its ready call) -> idle <-> busy."""

    def __init__(self, handle: Any, ref: Any) -> None:
        self.handle, self.ref = handle, ref
        self.ready = False
        self.job: Job | None = None
        self.started = 0.0


class RayExecutor(PoolExecutor):
    backend = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, num_gpus_per_worker: float = 0,
                 init: Callable[[Any], Any] | None = None, init_arg: Any = None, threads_per_worker: int = 1,
                 memory_limit_gb: float | None = None, start_method: str | None = None,
                 preload: Sequence[str] = ()) -> None:
        # start_method is a local-backend option: Ray starts its own workers. memory_limit_gb caps each
        # actor's address space on top of what Ray itself maps into it.
        self._ray = ray = import_ray()
        self._owns_ray = start_ray(workers, address, threads_per_worker=threads_per_worker, preload=preload)
        quiet_driver()
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads_per_worker))
        self.requested = int(workers)
        try:
            self.workers = gpu_workers(int(workers), num_gpus_per_worker) if num_gpus_per_worker else int(workers)
        except UsageError:
            if self._owns_ray:
                ray.shutdown()
            raise
        self.threads_per_worker = threads_per_worker
        self._init, self._init_arg = init, init_arg
        self._memory_limit_gb = memory_limit_gb
        self._remote = ray.remote(num_cpus=threads_per_worker, num_gpus=num_gpus_per_worker or 0,
                                  max_restarts=0, max_task_retries=0)(_Actor)
        self._slots: list[_Slot] = []
        self._closed = False
        # Actors start now, not at the first map: their cold start (a fresh process importing torch and
        # running init) overlaps with whatever the caller does before submitting work.
        self._grow(self.workers)

    # ------------------------------------------------------------------ actors

    def _spawn(self) -> _Slot:
        handle = self._remote.remote(self._init, self._init_arg, self.threads_per_worker, self._memory_limit_gb)
        return _Slot(handle, handle.ready.remote())

    def _grow(self, n: int) -> None:
        while len(self._slots) < min(self.workers, n):
            self._slots.append(self._spawn())

    def _replace(self, slot: _Slot) -> None:
        try:
            self._ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone
            pass
        fresh = self._spawn()
        slot.handle, slot.ref, slot.ready, slot.job = fresh.handle, fresh.ref, False, None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self._slots:
            try:
                self._ray.kill(s.handle, no_restart=True)
            except Exception:
                pass
        self._slots = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    # ------------------------------------------------------------------ map (PoolExecutor's hooks)

    def _feed(self, run: MapRun) -> None:
        for s in self._slots:
            if s.ready and s.job is None and run.pending:
                s.job, s.started = run.pending.popleft(), time.perf_counter()
                s.ref = s.handle.run.remote(run.fn, s.job[1])

    def _in_flight(self) -> list[_Slot]:
        return [s for s in self._slots if s.job is not None]

    def _restart(self, worker: _Slot) -> None:
        self._replace(worker)

    def _collect(self, run: MapRun) -> list[TaskOutcome]:
        waiting = [s for s in self._slots if s.job is not None or not s.ready]
        wait_for = run.wait_for([s for s in waiting if s.job is not None])
        done, _ = self._ray.wait([s.ref for s in waiting], num_returns=1, timeout=wait_for)
        done_ids = set(done)
        outcomes: list[TaskOutcome] = []
        for s in waiting:
            if s.ref in done_ids:
                o = self._receive(s, run)
            elif run.overdue(s):
                o = run.overran(s.job, time.perf_counter() - s.started)
                self._replace(s)
            else:
                o = None
            if o is not None:
                outcomes.append(o)
        return outcomes

    def _receive(self, s: _Slot, run: MapRun) -> TaskOutcome | None:
        ray = self._ray
        try:
            msg = ray.get(s.ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            job, seconds = s.job, time.perf_counter() - s.started
            self._replace(s)
            return None if job is None else run.worker_died(job, seconds, f"actor died ({type(exc).__name__})")
        if not s.ready:
            s.ready = True
            self._check_version(msg)
            return None
        job, s.job = s.job, None
        return run.result(job, msg)  # type: ignore[arg-type]

    @staticmethod
    def _check_version(msg: tuple[int, str, str]) -> None:
        import zenfx

        _pid, host, version = msg
        if version != zenfx.__version__:
            raise UsageError(f"a Ray worker on {host} runs zenfx {version}, this driver {zenfx.__version__}",
                             hint="install the same zenfx on every node")
