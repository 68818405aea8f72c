"""jacob_cov (Mellor et al., "Neural Architecture Search without Training", v1 2020; as a proxy in
Abdelfattah et al., ICLR 2021).

One mini-batch x (N inputs), train mode. J = d(sum of outputs)/dx per input, flattened to (N, D);
C = corrcoef(J) (N x N), eigenvalues v; score = ``-sum_i [log(v_i + k) + 1/(v_i + k)]``,
k = 1e-5 (the zero-cost-nas ``jacob_cov`` measure).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import draw
from ._util import prepare_net
from .base import ProxyContext, register_proxy

JACOB_K = 1e-5


def batch_jacobian(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    prepare_net(net)
    x = x.detach().clone().requires_grad_(True)
    y = net(x)
    if isinstance(y, (tuple, list)):
        y = y[0]
    y.backward(torch.ones_like(y))
    return x.grad.detach().reshape(x.shape[0], -1)


def jacob_score(jacob: np.ndarray, k: float = JACOB_K) -> float:
    corrs = np.corrcoef(np.asarray(jacob, dtype=np.float64))
    v = np.linalg.eigvalsh(corrs)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


@register_proxy(
    "jacob_cov",
    graph="original",
    needs_data=True,
    reference="Mellor et al., NAS without Training (arXiv 2006.04647v1); Abdelfattah et al., ICLR 2021 "
              "(zero-cost-nas jacob_cov)",
    summary="-sum(log(v+k) + 1/(v+k)) over eigenvalues v of the correlation of per-input input-Jacobians",
)
def jacob_cov(net: nn.Module, ctx: ProxyContext) -> float:
    (x, _y), = draw(ctx, 1)
    return jacob_score(batch_jacobian(net, x).double().cpu().numpy())
