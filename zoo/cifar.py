"""CIFAR-size ResNets built from torchvision's own ``BasicBlock`` and ``Bottleneck`` classes.

Two uses, one class:

- **search seeds** (``cifar_resnet_basic``, ``cifar_resnet_bottleneck``): a 3x3 stride-1 stem, no
  max-pool, four stages of one block each, narrow, shaped like the Zen-NAS reference's CIFAR seed
  ``SuperConvK3BNRELU(3,8,1,1) SuperResK3K3(8,16,1,8,1) ... (64,64,2,32,1)``. A search grows them;
  because the blocks are torchvision's, what it hands back trains like any torchvision ResNet.
- **the CIFAR ResNet family** of He et al. 2016 (``cifar_resnet20`` ... ``cifar_resnet110``): a
  16-wide stem, three stages of n BasicBlocks at 16/32/64, depth 6n+2. The paper's shortcut "A"
  pads with zeros; here a stage change uses torchvision's own 1x1-conv projection (option "B"), so
  ResNet-20 has 272,474 parameters with a 10-class head instead of the paper's 0.27M (269,722).

Attribute names follow torchvision's ``ResNet`` (``conv1``, ``bn1``, ``relu``, ``layer1``...,
``avgpool``, ``fc``), so code that knows torchvision ResNets knows these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from zenfx.errors import UsageError

_BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class CifarResNet(nn.Module):
    """Stem conv3x3(s1)-BN-ReLU, stages of torchvision blocks, global average pool, Linear."""

    def __init__(self, block: str = "basic", widths: Sequence[int] = (16, 32, 64, 64),
                 layers: Sequence[int] = (1, 1, 1, 1), strides: Sequence[int] | None = None,
                 stem_width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        if block not in _BLOCKS:
            raise UsageError(f"block must be one of {', '.join(_BLOCKS)}, got {block!r}")
        widths, layers = [int(w) for w in widths], [int(n) for n in layers]
        strides = [int(s) for s in strides] if strides is not None else [1] + [2] * (len(widths) - 1)
        if not (len(widths) == len(layers) == len(strides)) or not widths:
            raise UsageError(f"widths, layers and strides need the same non-zero length, got "
                             f"{len(widths)}, {len(layers)}, {len(strides)}")
        if min(widths) < 1 or min(layers) < 1 or stem_width < 1 or num_classes < 1:
            raise UsageError("widths, layers, stem_width and num_classes must be positive")
        cls = _BLOCKS[block]
        expansion = cls.expansion  # type: ignore[attr-defined]
        self.conv1 = nn.Conv2d(3, stem_width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem_width
        for i, (planes, n, stride) in enumerate(zip(widths, layers, strides, strict=True), start=1):
            blocks: list[nn.Module] = []
            for j in range(n):
                s = stride if j == 0 else 1
                downsample = None
                if s != 1 or inplanes != planes * expansion:
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * expansion, 1, stride=s, bias=False),
                        nn.BatchNorm2d(planes * expansion))
                blocks.append(cls(inplanes, planes, s, downsample))
                inplanes = planes * expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.num_stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():  # torchvision ResNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet_basic(num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 64),
                       stem_width: int = 8, layers: Sequence[int] = (1, 1, 1, 1)) -> CifarResNet:
    """Search seed: four stages of one torchvision BasicBlock each, widths 16/32/64/64."""
    return CifarResNet("basic", widths, layers, None, stem_width, num_classes)


def cifar_resnet_bottleneck(num_classes: int = 10, widths: Sequence[int] = (8, 16, 32, 32),
                            stem_width: int = 8, layers: Sequence[int] = (1, 1, 1, 1)) -> CifarResNet:
    """Search seed: four stages of one torchvision Bottleneck each; ``widths`` are the bottleneck
    planes (the reference seed's 8/16/32/32), each stage outputs 4x that (32/64/128/128)."""
    return CifarResNet("bottleneck", widths, layers, None, stem_width, num_classes)


def cifar_resnet(depth: int = 20, num_classes: int = 10, width: int = 16) -> CifarResNet:
    """He et al.'s CIFAR ResNet-``depth`` (depth = 6n + 2): three stages of n BasicBlocks."""
    if depth < 8 or (depth - 2) % 6:
        raise UsageError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return CifarResNet("basic", (width, 2 * width, 4 * width), (n, n, n), (1, 2, 2), width, num_classes)


__all__ = ["CifarResNet", "cifar_resnet", "cifar_resnet_basic", "cifar_resnet_bottleneck"]
