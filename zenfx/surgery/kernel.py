"""Kernel: a conv's kernel size changed with its padding, so every output shape stays."""

from __future__ import annotations

from torch import nn

from .layers import set_param


def apply_kernel(model: nn.Module, path: str, k: int, changed: list[nn.Module]) -> None:
    """Kernel k with padding adjusted so every output shape stays (static or timm's dynamic 'same')."""
    m = model.get_submodule(path)
    nd = len(m.kernel_size)  # type: ignore[arg-type]
    if not isinstance(m.padding, str) and any(p != 0 for p in m.padding):  # type: ignore[union-attr]
        m.padding = tuple(d * (k - 1) // 2 for d in m.dilation)  # type: ignore[union-attr, assignment]
        m._reversed_padding_repeated_twice = [p for p in reversed(m.padding) for _ in range(2)]  # type: ignore[union-attr]
    elif isinstance(m.padding, str):
        m._reversed_padding_repeated_twice = [  # type: ignore[assignment]
            v for d in reversed(m.dilation) for v in (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)]  # type: ignore[union-attr]
    m.kernel_size = (k,) * nd
    set_param(m, "weight", (m.out_channels, m.in_channels // m.groups, *m.kernel_size))  # type: ignore[operator, misc]
    changed.append(m)


__all__ = ["apply_kernel"]
