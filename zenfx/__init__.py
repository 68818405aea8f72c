"""zenfx: zero-shot NAS for any PyTorch model.

The public API mirrors the CLI: ``load_model`` / ``resolve_model`` turn a spec into a module,
``trace`` gives a shape-annotated fx graph, ``inspect_model`` summarises it.

Names are imported lazily (PEP 562): ``import zenfx`` (and so ``zenfx --help``) costs no torch
import; the first access to ``zenfx.score`` etc. imports the module that defines it. To export a
new name, add it to ``_LAZY`` with the submodule that defines it.
"""

from __future__ import annotations

import importlib

from .errors import (  # light: no torch
    NotConvertibleError,
    NotTraceableError,
    NumericalError,
    ShapeError,
    UnknownModelError,
    UsageError,
    ZenfxError,
)

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the console script's start-up)

# public name -> submodule (relative to zenfx) that defines it
_LAZY: dict[str, str] = {
    "LoadedModel": ".loading",
    "load_model": ".loading",
    "parse_input_size": ".loading",
    "parse_kwargs": ".loading",
    "pick_output": ".loading",
    "resolve_model": ".loading",
    "TracedModel": ".pipeline",
    "inspect_model": ".pipeline",
    "load_and_trace": ".pipeline",
    "count_macs": ".cost.flops",
    "CostReport": ".cost.report",
    "cost_report": ".cost.report",
    "ScoreResult": ".scoring",
    "score": ".scoring",
    "rank_models": ".ranking",
    "RankResult": ".ranking",
    "trace": ".tracing",
    "Change": ".vcnn",
    "VCNNResult": ".vcnn",
    "audit_models": ".audit",
    "convert_model": ".pipeline",
    "to_vcnn": ".pipeline",
    "Edit": ".genome",  # the search half (issue 10)
    "Genome": ".genome",
    "structure_key": ".genome",
    "SearchSpace": ".space",
    "space": ".genome",
    "build": ".genome",
    "mutate": ".genome",
    "shrink": ".genome",
    "ExportResult": ".export",
    "export_model": ".export",
    "search": ".search",  # issue 11: zenfx.search(...) -> SearchResult (the package is callable too)
    "SearchResult": ".search",
}

if TYPE_CHECKING:  # static tools see the eager imports
    from .audit import audit_models
    from .cost.flops import count_macs
    from .cost.report import CostReport, cost_report
    from .export import ExportResult, export_model
    from .loading import LoadedModel, load_model, parse_input_size, parse_kwargs, pick_output, resolve_model
    from .pipeline import TracedModel, convert_model, inspect_model, load_and_trace, to_vcnn
    from .ranking import RankResult, rank_models
    from .scoring import ScoreResult, score
    from .search import SearchResult, search
    from .tracing import trace
    from .vcnn import Change, VCNNResult


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zenfx' has no attribute '{name}'")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [  # every name of _LAZY too (a test checks they agree)
    "__version__",
    "NotConvertibleError",
    "NotTraceableError",
    "NumericalError",
    "ShapeError",
    "UnknownModelError",
    "UsageError",
    "ZenfxError",
    "LoadedModel",
    "load_model",
    "parse_input_size",
    "parse_kwargs",
    "pick_output",
    "resolve_model",
    "TracedModel",
    "inspect_model",
    "load_and_trace",
    "count_macs",
    "CostReport",
    "cost_report",
    "ScoreResult",
    "score",
    "rank_models",
    "RankResult",
    "trace",
    "Change",
    "VCNNResult",
    "audit_models",
    "convert_model",
    "to_vcnn",
    "Edit",
    "Genome",
    "structure_key",
    "SearchSpace",
    "space",
    "build",
    "mutate",
    "shrink",
    "ExportResult",
    "export_model",
    "search",
    "SearchResult",
]
