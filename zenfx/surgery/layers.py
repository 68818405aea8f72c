"""Resizing one layer along its channels: a handler per layer type.

Torch-Pruning keeps one pruner per layer type; here a handler per kind ("conv", "linear", "norm")
resizes a module's channel attributes and its tensors (new, uninitialised tensors of the old
dtype and device; a meta layer stays on meta). A new layer type is one entry in ``RESIZERS``.
Nothing here knows about genomes or search spaces: the caller says which channels go where.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def _like(t: torch.Tensor | None, shape: Sequence[int]) -> torch.Tensor:
    assert t is not None
    return torch.empty(tuple(shape), dtype=t.dtype, device=t.device)


def set_param(m: nn.Module, name: str, shape: Sequence[int]) -> None:
    old = getattr(m, name, None)
    if isinstance(old, nn.Parameter):
        setattr(m, name, nn.Parameter(_like(old, shape), requires_grad=old.requires_grad))


def set_buffer(m: nn.Module, name: str, shape: Sequence[int], fill: float | None = None) -> None:
    old = m._buffers.get(name)
    if old is not None:
        new = _like(old, shape)
        if fill is not None and new.device.type != "meta":
            new.fill_(fill)
        m._buffers[name] = new


def resize_conv(m: nn.Module, cin: int, cout: int, groups: int) -> None:
    m.in_channels, m.out_channels, m.groups = cin, cout, groups  # type: ignore[assignment]
    set_param(m, "weight", (cout, cin // groups, *m.kernel_size))  # type: ignore[misc]
    set_param(m, "bias", (cout,))


def resize_linear(m: nn.Module, cin: int, cout: int) -> None:
    m.in_features, m.out_features = cin, cout  # type: ignore[assignment]
    set_param(m, "weight", (cout, cin))
    set_param(m, "bias", (cout,))


def resize_norm(m: nn.Module, c: int) -> None:
    if isinstance(m, nn.GroupNorm):
        m.num_channels = c
    elif isinstance(m, nn.LayerNorm):
        m.normalized_shape = (c,)
    else:
        m.num_features = c  # type: ignore[assignment]
        set_buffer(m, "running_mean", (c,), 0.0)
        set_buffer(m, "running_var", (c,), 1.0)
    set_param(m, "weight", (c,))
    set_param(m, "bias", (c,))


def norm_channels(m: nn.Module) -> int:
    if isinstance(m, nn.GroupNorm):
        return m.num_channels
    if isinstance(m, nn.LayerNorm):
        return int(m.normalized_shape[0])
    return int(m.num_features)  # type: ignore[arg-type]


def _resize_conv(m: nn.Module, cin: int, cout: int | None, group_width: int | None) -> None:
    assert cout is not None
    groups = cout // group_width if group_width else m.groups  # type: ignore[operator]
    resize_conv(m, cin, cout, groups)  # type: ignore[arg-type]


def _resize_linear(m: nn.Module, cin: int, cout: int | None, _group_width: int | None) -> None:
    assert cout is not None
    resize_linear(m, cin, cout)


def _resize_norm(m: nn.Module, cin: int, _cout: int | None, _group_width: int | None) -> None:
    resize_norm(m, cin)


# kind -> handler(module, in channels, out channels (None for a norm), channels per group or None)
RESIZERS: dict[str, Callable[[nn.Module, int, Any, Any], None]] = {
    "conv": _resize_conv,
    "linear": _resize_linear,
    "norm": _resize_norm,
}


def resize_layer(m: nn.Module, kind: str, cin: int, cout: int | None = None, group_width: int | None = None) -> None:
    """Resize ``m`` (a layer of ``kind``) to ``cin`` inputs and ``cout`` outputs."""
    RESIZERS[kind](m, cin, cout, group_width)


__all__ = ["RESIZERS", "norm_channels", "resize_conv", "resize_layer", "resize_linear", "resize_norm", "set_buffer",
           "set_param"]
