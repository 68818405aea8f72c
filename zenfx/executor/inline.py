"""The in-process backend (``workers=0``): the same contract with nothing in between, for tests
and debugging (a breakpoint in ``fn`` works). It cannot enforce a timeout: there is no one to kill."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .base import Executor, TaskOutcome, run_task

_UNSET = object()


class InlineExecutor(Executor):
    backend = "inline"
    workers = 0

    def __init__(self, *, init: Callable[[Any], Any] | None = None, init_arg: Any = None) -> None:
        self._init, self._init_arg = init, init_arg
        self._state: Any = _UNSET
        self._init_error: str | None = None

    def _ensure_state(self) -> None:
        if self._state is not _UNSET or self._init_error is not None:
            return
        if self._init is None:
            self._state = None
            return
        status, value, error, _ = run_task(lambda _s, a: self._init(a), None, self._init_arg)  # type: ignore[misc]
        if status == "ok":
            self._state = value
        else:
            self._init_error = f"worker init failed: {error}"

    def map(self, fn: Callable[[Any, Any], Any], tasks: Sequence[Any], *,
            timeout: float | None = None) -> Iterator[TaskOutcome]:
        tasks = list(tasks)
        if not tasks:
            return
        self._ensure_state()
        for i, task in enumerate(tasks):
            if self._init_error is not None:
                yield TaskOutcome(i, "error", None, self._init_error, 0.0)
                continue
            status, value, error, seconds = run_task(fn, self._state, task)
            yield TaskOutcome(i, status, value, error, seconds)
