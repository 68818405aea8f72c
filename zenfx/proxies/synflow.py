"""SynFlow (Tanaka et al., NeurIPS 2020) as a zero-cost proxy (Abdelfattah et al., ICLR 2021).

Data-free. BatchNorm removed (the reference rebuilds the network with ``bn=False``), every
parameter and buffer replaced by its absolute value, the network in double precision, one
all-ones input of the scoring size (batch 1), loss R = sum of the outputs; score =
``sum over Conv/Linear weights of |w * dR/dw|``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import weight_layers
from .base import ProxyContext, register_proxy
from .phi import remove_batchnorm_


def synflow_value(net: nn.Module, input_size: tuple[int, ...], device: torch.device | str = "cpu") -> float:
    remove_batchnorm_(net)
    net.double().train()
    layers = weight_layers(net)
    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.abs_()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    x = torch.ones((1, *input_size), dtype=torch.float64, device=device)
    out = net(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    torch.sum(out).backward()
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for m in layers:
            if m.weight.grad is not None:
                total += (m.weight * m.weight.grad).abs().sum().cpu()
    return float(total)


@register_proxy(
    "synflow",
    graph="original",
    needs_data=False,
    reference="Tanaka et al., SynFlow, NeurIPS 2020; as a proxy in Abdelfattah et al., ICLR 2021 "
              "(zero-cost-nas synflow, bn=False)",
    summary="sum |w * dR/dw|, R = sum of outputs of the |w| BN-free net on an all-ones input, float64",
)
def synflow(net: nn.Module, ctx: ProxyContext) -> float:
    return synflow_value(net, tuple(ctx.input_size), ctx.device)
