"""Adapters a file spec's ``build()`` wraps a model in (one output of several)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PickOutput(nn.Module):
    """``model`` reduced to one of its outputs: ``forward(x)`` is ``model(x)[key]``.

    zenfx scores one feature map; a backbone that returns a dict or list of feature maps (a
    detection/segmentation trunk) is wrapped with this in a file spec's ``build()``. fx traces
    through it, so the graph is the model's own with the other outputs dropped.
    """

    def __init__(self, model: nn.Module, key: Any) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)[self.key]


def pick_output(model: nn.Module, key: Any) -> nn.Module:
    """``model`` with only output ``key`` (a dict key or a list index): see :class:`PickOutput`."""
    return PickOutput(model, key)
