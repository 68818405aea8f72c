"""Small helpers the gradient-based proxies share (not a proxy: the leading underscore keeps the
registry loader away)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

WEIGHT_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Conv and Linear modules in ``net.modules()`` order, each once (the references' layer set)."""
    seen: set[int] = set()
    out = []
    for m in net.modules():
        if isinstance(m, WEIGHT_TYPES) and id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    if not out:
        raise UsageError("the network has no Conv or Linear layer for a gradient proxy to read")
    return out


def logits_of(net: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    out = net(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(f"{name} needs logits (batch, classes) for its loss, got {shape}",
                         hint="score the original graph or let scoring append the GAP+Linear head")
    return out


def ce_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    out = logits_of(net, x, name)
    if int(y.max()) >= out.shape[1]:
        y = y % out.shape[1]
    return F.cross_entropy(out, y)


def prepare_net(net: nn.Module, ctx) -> nn.Module:  # noqa: ANN001
    """Train mode (the references score in train mode: BN uses batch statistics), grads on, zeroed."""
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net
