"""The ``local`` backend: warm worker processes on this machine.

Each worker is a process with a pipe to the driver. It ignores SIGINT (Ctrl-C reaches the whole
process group; only the driver reacts, so no worker prints a traceback), pins its torch threads,
optionally caps its address space, runs ``init(init_arg)`` once, says "ready", then serves
``(fn, task)`` messages until told to stop. ``fn`` and ``init`` travel by reference (module-level
functions), tasks by value.

The driver keeps every worker busy, reads results as they come (``multiprocessing.connection.wait``),
kills and replaces a worker whose task overran its timeout (outcome ``timeout``), and replaces a
worker that died (a crash, the OOM killer, a segfault in a C extension), retrying that task once on
the next free worker before recording it as an ``error``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from .base import ERROR, Job, MapRun, PoolExecutor, TaskOutcome, limit_address_space, one_line, run_task, set_threads

MAX_INIT_DEATHS = 3  # workers that die before saying "ready", in a row, before giving up


def _worker_main(conn: Connection, init: Callable[[Any], Any] | None, init_arg: Any, threads: int,
                 memory_limit_gb: float | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    if memory_limit_gb:
        limit_address_space(memory_limit_gb)
    state: Any = None
    init_error: str | None = None
    if init is not None:
        try:
            state = init(init_arg)
        except Exception as exc:  # noqa: BLE001 - reported with every task instead
            init_error = f"worker init failed: {one_line(exc)}"
    set_threads(threads)  # init may have imported torch
    try:
        conn.send(("ready", init_error))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            fn, task = msg
            if init_error is not None:
                result: tuple = (ERROR, None, init_error, 0.0)
            else:
                result = run_task(fn, state, task)
            try:
                conn.send(result)
            except Exception as exc:  # noqa: BLE001 - e.g. a value that cannot be pickled
                conn.send((ERROR, None, f"result could not be sent back: {one_line(exc)}", result[3]))
    except (EOFError, OSError, KeyboardInterrupt):
        return


def default_start_method() -> str:
    """``fork`` (workers start in milliseconds and inherit the imports) unless that is unsafe: a
    process running Ray's client threads (a driver that also uses the ray backend) must not be
    forked, since a child can inherit a lock or a half-used gRPC connection; then ``forkserver``.
    ``ZENFX_START_METHOD`` overrides."""
    env = os.environ.get("ZENFX_START_METHOD")
    if env:
        return env
    if "fork" not in mp.get_all_start_methods():
        return "spawn"
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return "forkserver"
    return "fork"


class _Worker:
    """One process and the driver's view of it: starting -> idle <-> busy; replaced when it dies."""

    def __init__(self, owner: LocalExecutor) -> None:
        self.owner = owner
        self.job: Job | None = None
        self.started = 0.0
        self.ready = False
        self.spawn()

    def spawn(self) -> None:
        o = self.owner
        parent, child = o._ctx.Pipe()
        self.conn: Connection = parent
        self.proc = o._ctx.Process(target=_worker_main, daemon=True, name="zenfx-worker",
                                   args=(child, o._init, o._init_arg, o.threads_per_worker, o.memory_limit_gb))
        self.proc.start()
        child.close()
        self.ready = False
        self.job = None

    def submit(self, fn: Callable[[Any, Any], Any], job: Job) -> None:
        self.job, self.started = job, time.perf_counter()
        self.conn.send((fn, job[1]))

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except Exception:  # pragma: no cover
            pass
        try:
            self.conn.close()
        except Exception:  # pragma: no cover
            pass

    def restart(self) -> None:
        self.kill()
        self.spawn()

    def stop(self) -> None:
        if self.proc.is_alive() and self.job is None:
            try:
                self.conn.send(None)
            except Exception:
                pass
            self.proc.join(2)
        if self.proc.is_alive():
            self.kill()
        else:
            self.proc.join(0)
            self.conn.close()


class LocalExecutor(PoolExecutor):
    backend = "local"

    def __init__(self, workers: int | None = None, *, init: Callable[[Any], Any] | None = None,
                 init_arg: Any = None, threads_per_worker: int = 1, start_method: str | None = None,
                 memory_limit_gb: float | None = None) -> None:
        self.workers = int(workers) if workers else (os.cpu_count() or 1)
        self._init, self._init_arg = init, init_arg
        self.threads_per_worker = threads_per_worker
        self.memory_limit_gb = memory_limit_gb
        self._ctx = mp.get_context(start_method or default_start_method())
        if self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload([m for m in ("torch", "zenfx.executor.local") if m in sys.modules])
        self._pool: list[_Worker] = []
        self._closed = False

    # ------------------------------------------------------------------ pool

    def _grow(self, n: int) -> None:
        while len(self._pool) < min(self.workers, n):
            self._pool.append(_Worker(self))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._pool:
            w.stop()
        self._pool = []

    # ------------------------------------------------------------------ map (PoolExecutor's hooks)

    def _in_flight(self) -> list[_Worker]:
        return [w for w in self._pool if w.job is not None]

    def _restart(self, worker: _Worker) -> None:
        worker.restart()

    def _feed(self, run: MapRun) -> None:
        for w in self._pool:
            if w.ready and w.job is None and run.pending:
                w.submit(run.fn, run.pending.popleft())

    def _collect(self, run: MapRun) -> list[TaskOutcome]:
        """Wait for the next event (a result, a death, a worker ready, a deadline) and turn it into outcomes."""
        waiting = [w for w in self._pool if w.job is not None or not w.ready]
        wait_for = run.wait_for([w for w in waiting if w.job is not None])
        ready = set(wait([w.conn for w in waiting] + [w.proc.sentinel for w in waiting], timeout=wait_for))
        outcomes: list[TaskOutcome] = []
        for w in waiting:
            if w.conn in ready or w.proc.sentinel in ready:
                o = self._receive(w, run)
            else:
                o = self._check_deadline(w, run)
            if o is not None:
                outcomes.append(o)
        return outcomes

    def _check_deadline(self, w: _Worker, run: MapRun) -> TaskOutcome | None:
        if not run.overdue(w):
            return None
        job, seconds = w.job, time.perf_counter() - w.started
        w.restart()
        return run.overran(job, seconds)

    def _receive(self, w: _Worker, run: MapRun) -> TaskOutcome | None:
        try:
            msg = w.conn.recv() if w.conn.poll() else None
        except (EOFError, OSError):
            msg = None
        if msg is None:  # the process is gone (or closed its end)
            return self._replace_dead(w, run)
        if not w.ready:  # ("ready", init_error)
            w.ready = True
            run.init_deaths = 0
            return None
        job, w.job = w.job, None
        return run.result(job, msg)  # type: ignore[arg-type]

    def _replace_dead(self, w: _Worker, run: MapRun) -> TaskOutcome | None:
        """Replace a dead worker; its task is retried once, then recorded as an error."""
        w.proc.join(1)
        code = w.proc.exitcode
        job, was_ready = w.job, w.ready
        seconds = time.perf_counter() - w.started
        w.restart()
        if job is None:
            run.init_deaths += 0 if was_ready else 1
            if run.init_deaths >= MAX_INIT_DEATHS:
                method = self._ctx.get_start_method()
                raise RuntimeError(f"workers die while starting (exit code {code}); with the {method} start "
                                   "method a script must guard its entry point with `if __name__ == '__main__':`")
            return None
        return run.worker_died(job, seconds, f"worker died (exit code {code})")
