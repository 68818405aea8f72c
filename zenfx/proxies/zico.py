"""ZiCo (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients",
ICLR 2023).

Two mini-batches, train mode, cross-entropy. For each batch b, the gradient g_b of every
Conv/Linear weight. Per layer l and weight element e: mean_e = mean_b |g_b,e|, std_e = std_b g_b,e
(population std, as numpy's default); over the elements with std_e != 0,
``S_l = sum_e mean_e / std_e``; ZiCo = ``sum_l log S_l`` over layers with S_l > 0 (the reference
``caculate_zico`` skips a layer whose sum is 0).

Default graph: VCNN (the reference's own search space scores networks with residuals removed);
the NAS-Bench-201 / NATS benchmark scores the cell networks as built, as the reference's
benchmark evaluation does (see docs/proxies.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import draw
from ._util import gradient_layers, gradient_proxy, weight_grads
from .base import ProxyContext

ZICO_BATCHES = 2


def zico_grads(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer a (batches, numel) float64 stack of weight gradients."""
    layers = gradient_layers(net)
    per: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in batches:
        for i, (m, g) in enumerate(zip(layers, weight_grads(net, layers, x, y, "zico"), strict=True)):
            per[i].append(torch.zeros(m.weight.numel(), dtype=torch.float64) if g is None
                          else g.detach().reshape(-1).double().cpu())
    return [torch.stack(p) for p in per]


def zico_from_grads(grads: list[torch.Tensor]) -> float:
    total = 0.0
    for g in grads:
        std = g.std(dim=0, unbiased=False)
        mean_abs = g.abs().mean(dim=0)
        nz = std != 0
        s = float((mean_abs[nz] / std[nz]).sum())
        if s != 0.0:
            total += math.log(s)
    return total


@gradient_proxy(
    "zico",
    graph="vcnn",
    reference="Li et al., ZiCo, ICLR 2023 (SLDGroup/ZiCo ZeroShotProxy/compute_zico.py: getgrad, caculate_zico)",
    summary="sum over layers of log sum_e mean|g|/std(g) of weight gradients across two CE batches",
)
def zico(net: nn.Module, ctx: ProxyContext) -> float:
    n = int(ctx.extra.get("zico_batches", ZICO_BATCHES))
    return zico_from_grads(zico_grads(net, draw(ctx, n)))
