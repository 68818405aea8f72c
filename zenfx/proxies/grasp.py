"""GraSP (Wang et al., ICLR 2020) as a zero-cost proxy (Abdelfattah et al., ICLR 2021).

One mini-batch, train mode, cross-entropy. g = dL/dw over the Conv/Linear weights (first pass,
detached); second pass with a differentiable gradient, z = sum_l <g_l, dL/dw_l>, backward gives
the Hessian-gradient product Hg; score = sum over weights of ``-w * (H g)`` (the reference's
``-theta * Hg``, temperature T = 1).
"""

from __future__ import annotations

import torch
from torch import autograd, nn

from ..data import draw
from ._util import ce_loss, gradient_layers, gradient_proxy, layer_total, weight_layers
from .base import ProxyContext


def grasp_hg(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
    """Hg for every Conv/Linear weight (None where the weight is unused)."""
    layers = gradient_layers(net)
    weights = [m.weight for m in layers]
    g = autograd.grad(ce_loss(net, x, y, "grasp"), weights, allow_unused=True)
    g = [gi.detach() if gi is not None else None for gi in g]
    gf = autograd.grad(ce_loss(net, x, y, "grasp"), weights, create_graph=True, allow_unused=True)
    z = sum((a * b).sum() for a, b in zip(g, gf, strict=True) if a is not None and b is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return [None] * len(weights)
    return list(autograd.grad(z, weights, allow_unused=True))


@gradient_proxy(
    "grasp",
    reference="Wang et al., GraSP, ICLR 2020; as a proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas grasp)",
    summary="sum over Conv/Linear weights of -w * (H g), Hessian-gradient product of the CE loss",
)
def grasp(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    hg = grasp_hg(net, x, y)
    with torch.no_grad():
        return layer_total((-m.weight * h).sum() for m, h in zip(weight_layers(net), hg, strict=True) if h is not None)
