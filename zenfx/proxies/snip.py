"""SNIP (Lee et al., ICLR 2019) as a zero-cost proxy (Abdelfattah et al., ICLR 2021).

One mini-batch, train mode, cross-entropy; saliency of every Conv/Linear weight
``|w * dL/dw|`` (the reference takes the gradient w.r.t. a multiplicative all-ones mask, which is
the same number); score = sum over all those weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import draw
from ._util import gradient_layers, gradient_proxy, layer_total, weight_grads
from .base import ProxyContext


@gradient_proxy(
    "snip",
    reference="Lee et al., SNIP, ICLR 2019; as a proxy in Abdelfattah et al., ICLR 2021 (zero-cost-nas snip)",
    summary="sum over Conv/Linear weights of |w * dL/dw| (CE loss, one batch)",
)
def snip(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    layers = gradient_layers(net)
    grads = weight_grads(net, layers, x, y, "snip")
    with torch.no_grad():
        return layer_total((m.weight * g).abs().sum() for m, g in zip(layers, grads, strict=True) if g is not None)
