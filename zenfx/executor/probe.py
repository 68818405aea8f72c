"""Tiny module-level tasks for checking a backend end to end (tests, ``benchmarks/bench_executor.py``,
a cluster smoke test): they must be importable by reference on every worker, so they live in the
package rather than in a test file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def init_state(arg: Any) -> dict[str, Any]:
    """Per-worker state: the init argument, the worker's pid, and a call counter (shows warmth)."""
    return {"arg": arg, "pid": os.getpid(), "calls": 0}


def echo(state: Any, task: Any) -> dict[str, Any]:
    """Returns the task with who ran it and how many tasks that worker had run before."""
    calls = -1
    if isinstance(state, dict):
        state["calls"] += 1
        calls = state["calls"]
    arg = state.get("arg") if isinstance(state, dict) else None
    return {"task": task, "pid": os.getpid(), "calls": calls, "arg": arg}


def square(state: Any, task: int) -> int:
    return task * task


def noop(state: Any, task: Any) -> Any:
    return task


def behave(state: Any, task: Any) -> Any:
    """``task`` says what to do: ``("ok", v)``, ``("raise", msg)``, ``("sleep", s, v)``, ``("exit", code)``
    (the process dies), ``("die_once", path, v)`` (dies unless ``path`` exists, creating it first),
    ``("threads",)`` (torch's thread count)."""
    act = _BEHAVIOURS.get(task[0])
    if act is None:
        raise ValueError(f"unknown probe task {task!r}")
    return act(task)


def _ok(task: Any) -> Any:
    return task[1]


def _raise(task: Any) -> Any:
    raise ValueError(task[1])


def _sleep(task: Any) -> Any:
    time.sleep(task[1])
    return task[2]


def _exit(task: Any) -> Any:
    os._exit(task[1])


def _die_once(task: Any) -> Any:
    if not os.path.exists(task[1]):
        open(task[1], "w").close()
        os._exit(9)
    return task[2]


def _threads(task: Any) -> int:
    import torch

    return torch.get_num_threads()


def _gpu_ids(task: Any) -> list[str]:
    """What Ray assigned to this worker (--device cuda -> num_gpus=1 per worker)."""
    import ray

    return [str(g) for g in ray.get_gpu_ids()]


def _alloc(task: Any) -> int:
    """task[1] GiB at once: MemoryError under a worker's address-space cap."""
    return len(bytearray(int(task[1] * 2**30)))


def _unpicklable(task: Any) -> Any:
    return lambda: None


_BEHAVIOURS: dict[str, Callable[[Any], Any]] = {
    "ok": _ok, "raise": _raise, "sleep": _sleep, "exit": _exit, "die_once": _die_once, "threads": _threads,
    "gpu_ids": _gpu_ids, "alloc": _alloc, "unpicklable": _unpicklable,
}


def failing_init(arg: Any) -> None:
    raise RuntimeError(f"cannot start: {arg}")


def busy(state: Any, task: tuple[int, int]) -> int:
    """CPU work of a known size (a seeded integer hash loop): for throughput measurements."""
    seed, n = task
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x
