"""Fisher (Theis et al. 2018; Turner et al., BlockSwap, ICLR 2020) as a zero-cost proxy
(Abdelfattah et al., ICLR 2021).

One mini-batch, train mode, cross-entropy. For every Conv/Linear layer with output activation a
(N, C, H, W) and its gradient g = dL/da: per sample and channel ``s_nc = sum_hw a * g``; the
channel saliency ``F_c = 0.5 * mean_n s_nc^2``. The reference (``measures/fisher.py``, mode
``channel``) then broadcasts each F_c over the channel's weights (``reshape_elements``) before
summing, so the score is ``sum_l sum_c F_c * (fan_in_l * k_h * k_w)``, which zenfx reproduces.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import draw
from ._util import ce_loss, gradient_layers, gradient_proxy, layer_total, weight_layers
from .base import ProxyContext


def fisher_channels(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
    """Per-layer channel saliencies F_c (None for a layer that never ran)."""
    layers = gradient_layers(net)
    acts: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}
    hooks = []

    def make(i: int):
        def fwd(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if out.requires_grad:
                out.retain_grad()
                acts[i].append(out)
        return fwd

    try:
        for i, m in enumerate(layers):
            hooks.append(m.register_forward_hook(make(i)))
        ce_loss(net, x, y, "fisher").backward()
    finally:
        for h in hooks:
            h.remove()
    res: list[torch.Tensor | None] = []
    for i in range(len(layers)):
        f = None
        for a in acts[i]:  # a layer called several times accumulates, as the reference's hook does
            if a.grad is None:
                continue
            prod = (a.detach() * a.grad)
            g_nk = prod.sum(dim=tuple(range(2, prod.ndim))) if prod.ndim > 2 else prod
            d = g_nk.pow(2).mean(0).mul(0.5)
            f = d if f is None else f + d
        res.append(f)
    return res


@gradient_proxy(
    "fisher",
    reference="Turner et al., BlockSwap, ICLR 2020; as a proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas fisher)",
    summary="per-channel 0.5*mean_n(sum_hw act*grad)^2, broadcast over each channel's weights and summed",
)
def fisher(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    per_layer = zip(weight_layers(net), fisher_channels(net, x, y), strict=True)
    return layer_total(float(f.double().sum()) * math.prod(m.weight.shape[1:]) for m, f in per_layer if f is not None)
