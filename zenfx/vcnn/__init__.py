"""Vanilla-CNN (VCNN) conversion: ordered graph passes over a traced graph, a conversion report and
a verdict.

``convert_traced(gm, input_size)`` rewrites a private copy of a traced model into the form Zen-NAS
scores (conv / BN / ReLU chains, output = pre-GAP feature map) and says what it changed and why a
model cannot be converted. The passes never load or trace a model: ``zenfx.pipeline.to_vcnn`` (load
-> trace -> convert) and ``zenfx.audit.audit_models`` (whole zoos) sit above this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from .convert import PASSES, convert_traced
from .report import APPROXIMATE, CONVERTIBLE, KINDS, NOT_CONVERTIBLE, VERDICTS, Change, VCNNResult

# Moved out of this package (issue 19) so the passes never import the pipeline; the old import
# paths ``zenfx.vcnn.to_vcnn`` / ``convert_model`` / ``audit_models`` keep working for users. This
# is a compatibility alias resolved at attribute access, not an import zenfx's own code relies on.
_MOVED = {"to_vcnn": "zenfx.pipeline", "convert_model": "zenfx.pipeline", "audit_models": "zenfx.audit"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'zenfx.vcnn' has no attribute '{name}'")


__all__ = ["APPROXIMATE", "CONVERTIBLE", "KINDS", "NOT_CONVERTIBLE", "PASSES", "VERDICTS", "Change", "VCNNResult",
           "convert_traced"]
