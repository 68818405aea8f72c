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
from ._util import ce_loss, prepare_net, weight_layers
from .base import ProxyContext, register_proxy


def grasp_hg(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
    """Hg for every Conv/Linear weight (None where the weight is unused)."""
    layers = weight_layers(net)
    prepare_net(net, None)
    weights = [m.weight for m in layers]
    g = autograd.grad(ce_loss(net, x, y, "grasp"), weights, allow_unused=True)
    g = [gi.detach() if gi is not None else None for gi in g]
    gf = autograd.grad(ce_loss(net, x, y, "grasp"), weights, create_graph=True, allow_unused=True)
    z = sum((a * b).sum() for a, b in zip(g, gf) if a is not None and b is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return [None] * len(weights)
    return list(autograd.grad(z, weights, allow_unused=True))


@register_proxy(
    "grasp",
    graph="original",
    needs_data=True,
    needs_head=True,
    reference="Wang et al., GraSP, ICLR 2020; as a proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas grasp)",
    summary="sum over Conv/Linear weights of -w * (H g), Hessian-gradient product of the CE loss",
)
def grasp(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    layers = weight_layers(net)
    hg = grasp_hg(net, x, y)
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for m, h in zip(layers, hg):
            if h is not None:
                total += (-m.weight * h).sum().double().cpu()
    return float(total)
