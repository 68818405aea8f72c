"""A user's own backbone, as zenfx sees it: any nn.Module behind a callable in a .py file.

    ./dev zenfx inspect examples/my_backbone.py:build
    ./dev zenfx score examples/my_backbone.py:build -k width=48 --resolution 64
"""

from __future__ import annotations

import torch
from torch import nn


class SEGate(nn.Module):
    """Squeeze-and-excitation: the VCNN conversion strips it (x * gate(x) -> x)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class Block(nn.Module):
    """Conv-BN-SiLU twice with SE and an identity shortcut: residual, SiLU and SE all get rewritten."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.se = SEGate(channels)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.se(self.body(x)))


class MyBackbone(nn.Module):
    def __init__(self, width: int = 32, depth: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.SiLU())
        self.stages = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))


def build(width: int = 32, depth: int = 2, num_classes: int = 10) -> MyBackbone:
    return MyBackbone(width, depth, num_classes)
