"""One way to run many independent jobs: ``make_executor(backend, workers, ...)``.

audit, bench and search hand a module-level function and a list of small task values (a model name,
a genome dict, an architecture record) to an executor and read back one ``TaskOutcome`` per task in
completion order. The backends differ only in where the work runs:

- ``inline`` (``workers=0``): in this process, one task after another; for tests and debugging
  (no timeout, exceptions of ``fn`` still become outcomes).
- ``local`` (the default): warm worker processes on this machine, started once and reused by every
  ``map`` call; each keeps ``init(init_arg)`` as its state (imports, a cached search space, a data
  provider), runs one torch thread by default, and is killed and replaced when a task overruns its
  timeout or the worker dies.
- ``ray``: long-lived Ray actors on a cluster (or a local Ray started for the run), same contract.

Why an executor and not ``ProcessPoolExecutor``: the pool in the standard library cannot time out a
single task, loses the whole pool when one worker dies (``BrokenProcessPool``), and cannot keep
per-worker state across ``map`` calls without globals; the search needs all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .base import Executor, TaskOutcome, one_line

BACKENDS = ("inline", "local", "ray")


def make_executor(backend: str = "local", workers: int | None = None, *, ray_address: str | None = None,
                  num_gpus_per_worker: float = 0, init: Callable[[Any], Any] | None = None,
                  init_arg: Any = None, threads_per_worker: int = 1, preload: Sequence[str] = (),
                  **options: Any) -> Executor:
    """An executor of ``backend`` with ``workers`` workers (None: the machine's CPU count).

    ``workers=0`` or ``backend="inline"`` runs everything in this process. ``init(init_arg)`` runs
    once per worker and its return value is the ``state`` every ``fn(state, task)`` receives.
    ``ray_address`` (ray only): ``"auto"`` or ``HOST:PORT`` of a running cluster; None starts a
    local Ray sized to ``workers``. ``num_gpus_per_worker`` (ray only) reserves GPUs per actor (no
    more actors start than the cluster's GPUs hold; none at all is a ``UsageError``). ``preload``
    (ray only, for a Ray this starts): modules its idle workers import before actors land on them.
    Extra ``options`` go to the backend (``memory_limit_gb``: each worker's address-space cap, on
    top of Ray's own mappings for an actor; local only: ``start_method``).
    """
    from ..errors import UsageError

    name = (backend or "local").strip().lower()
    if name not in BACKENDS:
        raise UsageError(f"unknown executor backend {backend!r} (choose {', '.join(BACKENDS)})")
    if workers is not None and workers < 0:
        raise UsageError(f"the number of workers must be >= 0, got {workers}")
    if threads_per_worker < 1:
        raise UsageError(f"threads per worker must be >= 1, got {threads_per_worker}")
    if name == "inline" or (workers == 0 and name == "local"):
        from .inline import InlineExecutor

        return InlineExecutor(init=init, init_arg=init_arg)
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor(workers, init=init, init_arg=init_arg, threads_per_worker=threads_per_worker,
                             **options)
    from .ray_backend import RayExecutor

    if workers == 0:
        raise UsageError("the ray backend needs at least one worker")
    return RayExecutor(workers, address=ray_address, num_gpus_per_worker=num_gpus_per_worker, init=init,
                       init_arg=init_arg, threads_per_worker=threads_per_worker, preload=preload, **options)


def placement_options(backend: str, device: str, *, fork_unsafe: bool = False) -> dict[str, Any]:
    """``make_executor`` options for work scored on ``device``: one GPU per Ray worker on CUDA; on
    the local backend fresh (forkserver) workers when a fork is unsafe, because CUDA does not survive
    a fork, nor (``fork_unsafe``) autograd's threads once this process ran a backward pass.
    ``ZENFX_START_METHOD`` still decides the local start method when set."""
    import os

    cuda = str(device).startswith("cuda")
    opts: dict[str, Any] = {}
    if backend == "ray" and cuda:
        opts["num_gpus_per_worker"] = 1
    if backend == "local" and (cuda or fork_unsafe) and "ZENFX_START_METHOD" not in os.environ:
        opts["start_method"] = "forkserver"
    return opts


__all__ = ["BACKENDS", "Executor", "TaskOutcome", "make_executor", "one_line", "placement_options"]
