"""FLOPs as a proxy: multiply-accumulates of one image, counted by ``zenfx.cost.flops``.

The counting itself belongs to the cost package (FlopCounterMode on fake/meta tensors, matching
torchvision's published figures); this module only exposes it through the proxy registry.
"""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from .base import ProxyContext, register_proxy


def _count_macs():
    try:
        from ..cost.flops import count_macs  # type: ignore[import-not-found]
    except ImportError as exc:  # the cost package is developed alongside
        raise UsageError("the flops proxy needs zenfx.cost.flops.count_macs, which is not available "
                         f"in this build ({exc})") from None
    return count_macs


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
    return float(_count_macs()(net, tuple(ctx.input_size), batch_size=1))
