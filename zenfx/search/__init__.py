"""Zen-NAS evolution of a real model under budgets (``zenfx search``; issue 11).

``zenfx.search(model, out=RUN_DIR, budget_params="1M", ...)`` runs a search and returns a
:class:`SearchResult`. This package is also that function: ``zenfx.search`` is a module you can
call, so ``zenfx.search(...)`` and ``zenfx.search.budget`` both work.

Modules: ``budget`` (units, cheap-first checks), ``evolution`` (the algorithm, no I/O),
``candidate`` (evaluate one genome in a worker), ``config``, ``run`` (run folder, checkpoint,
resume, the loop), ``stages``, ``plots``, ``nats`` (the ground-truth benchmark).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .run import SearchProgress, SearchResult, parse_duration, search


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["SearchProgress", "SearchResult", "parse_duration", "search"]
