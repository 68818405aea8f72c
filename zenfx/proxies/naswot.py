"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

One mini-batch of N inputs, train mode, no gradients. At every ReLU, each input's binary code
c = 1[pre-activation > 0] (flattened); the Hamming kernel accumulates
``K += c c^T + (1 - c)(1 - c)^T`` over all ReLUs (so K_ij = number of units where inputs i and j
agree); score = ``log|det K|`` (``np.linalg.slogdet``).

ReLUs are found wherever they run (``nn.ReLU`` modules, ``F.relu``/``torch.relu`` calls in a traced
graph) by intercepting the call, not by module type alone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..data import draw
from ..errors import UsageError
from .base import ProxyContext, register_proxy

_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
if hasattr(F, "relu_"):
    _RELUS.add(F.relu_)


class _ReLUCodes(TorchFunctionMode):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.K = torch.zeros((n, n), dtype=torch.float64)
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor):
            x = args[0].detach().reshape(args[0].shape[0], -1)
            c = (x > 0).double()
            self.K += (c @ c.t() + (1.0 - c) @ (1.0 - c).t()).cpu()
            self.count += 1
        return func(*args, **kwargs)


def naswot_kernel(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, int]:
    net.train()
    mode = _ReLUCodes(x.shape[0])
    with torch.no_grad(), mode:
        net(x)
    return mode.K.numpy(), mode.count


@register_proxy(
    "naswot",
    graph="original",
    needs_data=True,
    reference="Mellor et al., Neural Architecture Search without Training, ICML 2021 (hooks on ReLU, slogdet of K)",
    summary="log|det K|, K the Hamming-agreement kernel of the inputs' binary ReLU codes (one batch)",
)
def naswot(net: nn.Module, ctx: ProxyContext) -> float:
    (x, _y), = draw(ctx, 1)
    K, count = naswot_kernel(net, x)
    if count == 0:
        raise UsageError("naswot found no ReLU in the network (it reads binary ReLU codes)")
    _sign, logdet = np.linalg.slogdet(K)
    return float(logdet)
