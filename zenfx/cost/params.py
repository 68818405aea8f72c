"""Parameter counts: total, trainable, and per module path (shared parameters counted once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class ParamCount:
    total: int
    trainable: int
    by_module: dict[str, int] = field(default_factory=dict)  # path -> params inside it (children included)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "trainable": self.trainable}


def count_params(module: nn.Module) -> ParamCount:
    """Counts of ``module.parameters()`` (deduplicated like torchvision's ``num_params``).

    ``by_module[path]`` sums the parameters registered anywhere under ``path``; a parameter shared
    by two modules is attributed to the first path that registers it.
    """
    seen: set[int] = set()
    total = trainable = 0
    by_module: dict[str, int] = {}
    for name, p in module.named_parameters(remove_duplicate=True):
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
        parts = name.split(".")[:-1]
        by_module[""] = by_module.get("", 0) + n
        for i in range(1, len(parts) + 1):
            key = ".".join(parts[:i])
            by_module[key] = by_module.get(key, 0) + n
    by_module.setdefault("", 0)
    return ParamCount(total, trainable, by_module)
