"""Modules the VCNN passes insert into a converted graph."""

from __future__ import annotations

import torch
from torch import nn


class ChannelsLastBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the *last* dimension: the stand-in for a LayerNorm over channels.

    LayerNorm over channels works on channels-last maps (N, H, W, C) or token sequences (N, L, C);
    this normalises the same channels with batch statistics, moving them to dim 1 and back. It is a
    ``BatchNorm2d`` subclass, so everything that counts or re-initialises BN (Zen-score's BN
    variance term included) treats it as BN.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() == 2:
            return super().forward(input)
        moved = input.movedim(-1, 1)
        return super().forward(moved).movedim(1, -1)


class ChannelsFirstBatchNorm(nn.BatchNorm2d):
    """BatchNorm over dim 1 for any rank >= 2 (stand-in for GroupNorm / InstanceNorm on N, C, ...)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
