"""Width: set a channel group to a new count, resizing every layer that reads or writes it.

A channel group and its layers come from the space analysis (``zenfx.space``), but surgery needs
only their shape here (:class:`GroupLayer`, :class:`GroupLayers`), so it imports no analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from torch import nn

from .layers import norm_channels, resize_layer


class GroupLayer(Protocol):
    """A layer of the channel analysis: where it is, what it is, which groups it reads and writes."""

    path: str
    kind: str  # "conv" | "linear" | "norm"
    out_group: Any  # the group id it writes (conv/linear), else None
    in_parts: Sequence[tuple[str, int]]  # (group id, repeat) it reads, in order
    group_width: Any  # channels per group of a grouped conv, else None


class GroupLayers(Protocol):
    def layers_of(self, gid: str) -> Sequence[Any]: ...


def channels_of(topo: GroupLayers, model: nn.Module, gid: str) -> int:
    for lay in topo.layers_of(gid):
        m = model.get_submodule(lay.path)
        if lay.out_group == gid:
            return int(m.out_channels if lay.kind == "conv" else m.out_features)  # type: ignore[arg-type]
        for g, s in lay.in_parts:
            if g == gid and len(lay.in_parts) == 1:
                if lay.kind == "conv":
                    return int(m.in_channels) // s  # type: ignore[arg-type]
                if lay.kind == "linear":
                    return int(m.in_features) // s  # type: ignore[arg-type]
                return norm_channels(m) // s
    return 0


def apply_width(model: nn.Module, topo: GroupLayers, gid: str, value: int, changed: list[nn.Module]) -> None:
    """Set group ``gid`` to ``value`` channels: every layer reading or writing it is resized."""
    layers = topo.layers_of(gid)
    wanted: dict[str, int] = {gid: value}
    for lay in layers:
        for g in dict.fromkeys([lay.out_group, *(p for p, _ in lay.in_parts)]):
            if g is not None and g not in wanted:
                wanted[g] = channels_of(topo, model, g)
    for lay in layers:
        resize_to(model.get_submodule(lay.path), lay, wanted)
        changed.append(model.get_submodule(lay.path))


def resize_to(m: nn.Module, lay: GroupLayer, wanted: dict[str, int]) -> None:
    """Resize one layer so the groups it reads and writes have the ``wanted`` channel counts."""
    cin = sum(wanted[g] * s for g, s in lay.in_parts)
    cout = wanted[lay.out_group] if lay.kind in ("conv", "linear") else None
    resize_layer(m, lay.kind, cin, cout, lay.group_width)


__all__ = ["GroupLayer", "GroupLayers", "apply_width", "channels_of", "resize_to"]
