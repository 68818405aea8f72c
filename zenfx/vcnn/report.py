"""What a VCNN conversion says about itself: the recorded changes, the verdict and its reasons."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx

from ..errors import NotConvertibleError

CONVERTIBLE = "convertible"
APPROXIMATE = "convertible_with_approximations"
NOT_CONVERTIBLE = "not_convertible"
VERDICTS = (CONVERTIBLE, APPROXIMATE, NOT_CONVERTIBLE)

# Change kinds, one vocabulary for the passes, the report table and the audit CSV columns.
KINDS = (
    "identity",       # dropout / drop-path / layer-scale / Identity wrappers removed
    "residual",       # residual add -> main branch kept, shortcut dropped
    "gate",           # SE/ECA/CBAM-style gating multiply (or pooled-context add) -> main operand
    "attention",      # attention branch stripped, same-shape path kept
    "activation",     # non-ReLU activation -> ReLU
    "bn_module",      # functional batch_norm (timm BatchNormAct) -> call_module BatchNorm (same tensors)
    "norm_replaced",  # LayerNorm / GroupNorm / ... -> BatchNorm over the same channels
    "norm_kept",      # non-BN norm left in place (keep_norms=True or no BN equivalent)
    "head_cut",       # graph cut at the global average pool (or the last feature map)
)


@dataclass
class Change:
    """One recorded rewrite: which pass, at which node, what it kept and what it dropped."""

    pass_name: str
    node: str
    kind: str
    kept: str | None = None
    dropped: list[str] = field(default_factory=list)
    detail: str = ""
    approximate: bool = False  # True when the rewrite changes what the network computes beyond VCNN form

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_name,
            "node": self.node,
            "kind": self.kind,
            "kept": self.kept,
            "dropped": list(self.dropped),
            "detail": self.detail,
            "approximate": self.approximate,
        }


def reason_category(reason: str) -> str:
    """The stable part of a reason (before the first ':'), used to rank blocking reasons in audits."""
    return reason.split(":", 1)[0].strip()


@dataclass
class VCNNResult:
    """The converted graph plus the conversion report."""

    gm: fx.GraphModule | None
    changes: list[Change] = field(default_factory=list)
    verdict: str = CONVERTIBLE
    reasons: list[str] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bn_count: int = 0
    conv_count: int = 0
    name: str = ""
    tracer: str = "unknown"
    input_size: tuple[int, ...] = ()
    output_shape: Any = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pass

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(ch.kind for ch in self.changes)
        return {k: c.get(k, 0) for k in KINDS} | {k: v for k, v in c.items() if k not in KINDS}

    @property
    def convertible(self) -> bool:
        return self.verdict != NOT_CONVERTIBLE

    def raise_if_not_convertible(self) -> VCNNResult:
        if self.verdict == NOT_CONVERTIBLE:
            what = self.name or "model"
            first = self.reasons[0] if self.reasons else "unknown reason"
            more = f" (+{len(self.reasons) - 1} more)" if len(self.reasons) > 1 else ""
            raise NotConvertibleError(f"{what} is not VCNN-convertible: {first}{more}", reasons=list(self.reasons))
        return self

    def to_dict(self, include_changes: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.name,
            "tracer": self.tracer,
            "input_size": list(self.input_size),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "approximations": list(self.approximations),
            "notes": list(self.notes),
            "counts": self.counts,
            "bn_count": self.bn_count,
            "conv_count": self.conv_count,
            "output_shape": list(self.output_shape) if isinstance(self.output_shape, tuple) else self.output_shape,
        }
        if include_changes:
            d["changes"] = [c.to_dict() for c in self.changes]
        return d
