"""FLOPs as a proxy: multiply-accumulates of one image, counted by ``zenfx.cost.flops``.

The counting itself belongs to the cost package (FlopCounterMode on fake/meta tensors, matching
torchvision's published figures); this module only exposes it through the proxy registry.
"""

from __future__ import annotations

from torch import nn

from .base import ProxyContext, register_proxy


@register_proxy(
    "flops",
    graph="original",
    needs_data=False,
    reference="multiply-accumulate count of one forward pass at the scoring resolution (batch 1)",
    summary="MACs of one image at the scoring resolution (zenfx.cost.flops)",
    deterministic=True,
    mutates=False,
)
def flops(net: nn.Module, ctx: ProxyContext) -> float:
    from ..cost.flops import count_macs  # the cost counters load on first use

    return float(count_macs(net, tuple(ctx.input_size), batch_size=1))
