"""Cost of a model: MACs (FLOPs = 2 x MACs), params, activation memory, measured and predicted latency.

``cost_report`` is the one call that gathers them (what ``zenfx report`` renders); the counters
are usable alone: ``count_macs``, ``count_params``, ``activation_memory``, ``measure_latency``,
``predict_latency``. Heavier modules load lazily so ``import zenfx.cost.flops`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from .flops import MacCount, count, count_macs
from .memory import ActivationMemory, activation_memory
from .params import ParamCount, count_params

_LAZY = {
    "cost_report": "report", "CostReport": "report",
    "measure_latency": "latency", "LatencyResult": "latency",
    "predict_latency": "predictor", "LatencyTable": "predictor", "LatencyPrediction": "predictor",
}

__all__ = ["ActivationMemory", "MacCount", "ParamCount", "activation_memory", "count", "count_macs",
           "count_params", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
