"""#Params: the baseline every zero-shot proxy must beat (ZiCo, ICLR 2023, shows few do)."""

from __future__ import annotations

from torch import nn

from .base import ProxyContext, register_proxy


def count_params(net: nn.Module) -> int:
    """Number of parameter elements, each shared tensor once (works on meta-device models)."""
    seen: set[int] = set()
    total = 0
    for p in net.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


@register_proxy(
    "params",
    graph="original",
    needs_data=False,
    reference="parameter count; baseline in Abdelfattah et al. ICLR 2021 and Li et al. (ZiCo) ICLR 2023",
    summary="number of parameters of the model as built",
    deterministic=True,
    mutates=False,
)
def params(net: nn.Module, ctx: ProxyContext) -> float:
    return float(count_params(net))
