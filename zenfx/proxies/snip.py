"""SNIP (Lee et al., ICLR 2019) as a zero-cost proxy (Abdelfattah et al., ICLR 2021).

One mini-batch, train mode, cross-entropy; saliency of every Conv/Linear weight
``|w * dL/dw|`` (the reference takes the gradient w.r.t. a multiplicative all-ones mask, which is
the same number); score = sum over all those weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import draw
from ._util import ce_loss, prepare_net, weight_layers
from .base import ProxyContext, register_proxy


@register_proxy(
    "snip",
    graph="original",
    needs_data=True,
    needs_head=True,
    reference="Lee et al., SNIP, ICLR 2019; as a proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas snip)",
    summary="sum over Conv/Linear weights of |w * dL/dw| (CE loss, one batch)",
)
def snip(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    layers = weight_layers(net)
    prepare_net(net, ctx)
    ce_loss(net, x, y, "snip").backward()
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for m in layers:
            if m.weight.grad is not None:
                total += (m.weight * m.weight.grad).abs().sum().double().cpu()
    return float(total)
