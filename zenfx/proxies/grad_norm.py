"""grad_norm (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021).

One mini-batch, train mode, cross-entropy loss, one backward pass; for every Conv/Linear layer
the Frobenius norm of its weight gradient ``||dL/dW_l||_2``; score = sum over layers (the
reference ``foresight/pruners/measures/grad_norm.py`` returns per-layer norms, summed by
``find_measures``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import draw
from ._util import gradient_layers, gradient_proxy, layer_total, weight_grads
from .base import ProxyContext


def grad_norm_layers(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    grads = weight_grads(net, gradient_layers(net), x, y, "grad_norm")
    return [float(g.norm()) if g is not None else 0.0 for g in grads]


@gradient_proxy(
    "grad_norm",
    reference="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 "
              "(SamsungLabs zero-cost-nas grad_norm)",
    summary="sum over Conv/Linear layers of the L2 norm of the weight gradient of the CE loss (one batch)",
)
def grad_norm(net: nn.Module, ctx: ProxyContext) -> float:
    (x, y), = draw(ctx, 1)
    return layer_total(grad_norm_layers(net, x, y))
