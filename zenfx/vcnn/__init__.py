"""Vanilla-CNN (VCNN) conversion: ordered graph passes, a conversion report and a verdict.

``to_vcnn(model_or_gm)`` rewrites a private copy of a traced model into the form Zen-NAS scores
(conv / BN / ReLU chains, output = pre-GAP feature map) and says what it changed and why a model
cannot be converted. ``audit_models`` runs that over whole zoos.
"""

from __future__ import annotations

from .convert import PASSES, convert_model, to_vcnn
from .report import APPROXIMATE, CONVERTIBLE, KINDS, NOT_CONVERTIBLE, VERDICTS, Change, VCNNResult


def audit_models(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy wrapper, see zenfx.vcnn.audit
    from .audit import audit_models as _audit

    return _audit(*args, **kwargs)


__all__ = ["APPROXIMATE", "CONVERTIBLE", "KINDS", "NOT_CONVERTIBLE", "PASSES", "VERDICTS", "Change", "VCNNResult",
           "audit_models", "convert_model", "to_vcnn"]
