"""What the gradient-based proxies share (not a proxy: the leading underscore keeps the registry
loader away).

snip, grad_norm, grasp, fisher and zico all follow one recipe: draw a batch, put the network in
train mode with fresh gradients, run a cross-entropy forward/backward on its logits, read one
quantity per Conv/Linear layer and sum the layers in float64 on the host. The recipe lives here
(:func:`gradient_proxy`, :func:`gradient_layers`, :func:`weight_grads`, :func:`layer_total`); each
proxy module keeps only its own per-layer formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .base import ProxyFn, register_proxy

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


def prepare_net(net: nn.Module) -> nn.Module:
    """Train mode (the references score in train mode: BN uses batch statistics), grads on, zeroed."""
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net


def gradient_proxy(name: str, *, reference: str, summary: str, graph: str = "original") -> Callable[[ProxyFn], ProxyFn]:
    """Register a proxy that needs labelled data and logits (a CE loss): every gradient proxy."""
    return register_proxy(name, graph=graph, needs_data=True, needs_head=True,  # type: ignore[arg-type]
                          reference=reference, summary=summary)


def gradient_layers(net: nn.Module) -> list[nn.Module]:
    """The Conv/Linear layers a gradient proxy reads, with ``net`` in train mode and fresh gradients."""
    layers = weight_layers(net)
    prepare_net(net)
    return layers


def weight_grads(net: nn.Module, layers: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                 name: str) -> list[torch.Tensor | None]:
    """One cross-entropy forward/backward from zeroed gradients: each layer's weight gradient (None
    for a layer the batch never reached)."""
    for p in net.parameters():
        p.grad = None
    ce_loss(net, x, y, name).backward()
    return [m.weight.grad for m in layers]


def layer_total(values: Iterable[torch.Tensor | float | None]) -> float:
    """Sum of per-layer values in float64 on the host, layer by layer (None skipped): the
    references' accumulation, so the sum does not depend on the device or the dtype scored in."""
    total = 0.0
    for v in values:
        if v is not None:
            total += float(v.double()) if isinstance(v, torch.Tensor) else float(v)
    return total
