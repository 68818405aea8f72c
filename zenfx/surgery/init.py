"""Initialising changed layers the way their model family's own code does.

A replayed genome must give an identical state dict every time, and a changed layer should start
as its family would start it (torchvision ResNet / MobileNet / EfficientNet / RegNet, timm's goog
and ResNet rules), else PyTorch's default: hence one initialiser per family, applied in module
order under the caller's seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn


def family_of(model: nn.Module) -> str:
    mod = type(model).__module__
    for key, fam in (("torchvision.models.resnet", "kaiming_relu"), ("timm.models.resnet", "kaiming_relu"),
                     ("torchvision.models.mobilenet", "mobilenet"), ("torchvision.models.efficientnet", "tv_effnet"),
                     ("torchvision.models.regnet", "regnet"), ("timm.models.efficientnet", "goog"),
                     ("timm.models.mobilenetv3", "goog"), ("timm.models.regnet", "regnet")):
        if mod.startswith(key):
            return fam
    return "default"


def _init_conv(m: nn.modules.conv._ConvNd, family: str) -> None:
    if family in ("regnet", "goog"):  # normal(0, sqrt(2 / fan_out)); goog's fan-out counts per group
        fan_out = math.prod(m.kernel_size) * m.out_channels // (m.groups if family == "goog" else 1)
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
    else:
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _init_norm(m: nn.Module, _family: str) -> None:
    if m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _init_linear(m: nn.Linear, family: str) -> None:
    if family == "kaiming_relu":  # torchvision / timm ResNet keep PyTorch's default Linear init
        return
    if family in ("mobilenet", "regnet"):
        nn.init.normal_(m.weight, 0, 0.01)
    else:
        r = 1.0 / math.sqrt(m.out_features)
        nn.init.uniform_(m.weight, -r, r)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


# layer type -> its family-aware initialiser (the first match in order wins)
INITIALISERS: list[tuple[tuple[type, ...], Any]] = [
    ((nn.modules.conv._ConvNd,), _init_conv),
    ((nn.modules.batchnorm._BatchNorm, nn.GroupNorm), _init_norm),
    ((nn.Linear,), _init_linear),
]


def init_module(m: nn.Module, family: str) -> None:
    """Initialise one changed layer as its family's own init code does, else PyTorch's default."""
    if hasattr(m, "reset_parameters"):
        m.reset_parameters()
    if family == "default":
        return
    for types, init in INITIALISERS:
        if isinstance(m, types):
            init(m, family)
            return


def initialise(model: nn.Module, changed: Iterable[nn.Module]) -> None:
    ids = {id(m) for m in changed}
    family = family_of(model)
    for _, m in model.named_modules():
        if id(m) in ids:
            init_module(m, family)


__all__ = ["family_of", "init_module", "initialise"]
