"""zenfx: zero-shot NAS for any PyTorch model.

The public API mirrors the CLI: ``load_model`` / ``resolve_model`` turn a spec into a module,
``trace`` gives a shape-annotated fx graph, ``inspect_model`` summarises it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    NotConvertibleError,
    NotTraceableError,
    NumericalError,
    ShapeError,
    UnknownModelError,
    UsageError,
    ZenfxError,
)
from .loading import LoadedModel, load_model, parse_input_size, parse_kwargs, resolve_model
from .pipeline import TracedModel, inspect_model, load_and_trace
from .cost.flops import count_macs
from .cost.report import CostReport, cost_report
from .scoring import ScoreResult, score
from .tracing import trace
from .vcnn import Change, VCNNResult, audit_models, convert_model, to_vcnn

__all__ = [
    "Change",
    "VCNNResult",
    "audit_models",
    "convert_model",
    "to_vcnn",
    "__version__",
    "CostReport",
    "LoadedModel",
    "NotConvertibleError",
    "NotTraceableError",
    "NumericalError",
    "ScoreResult",
    "ShapeError",
    "TracedModel",
    "UnknownModelError",
    "UsageError",
    "ZenfxError",
    "cost_report",
    "count_macs",
    "inspect_model",
    "load_and_trace",
    "load_model",
    "parse_input_size",
    "parse_kwargs",
    "resolve_model",
    "score",
    "trace",
]
