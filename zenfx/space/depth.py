"""The topology after a depth edit, derived from the topology before it (no re-trace).

A depth edit appends copies of a run's last block or removes blocks from the run's end, and a
container with numeric keys renumbers its later children. The channel analysis of the edited
model is then known without tracing it again:

- layers of kept children keep their groups, under their (possibly renumbered) paths;
- layers of removed blocks disappear, with the groups only they used;
- a copied block repeats the source block's layers under the copy's path; the groups that lived
  only inside the source block (its inner widths) get the copy's own ids, the groups it shares
  with the rest of the net (the stage width tied through its residual add) stay shared;
- kernel sites and freezing reasons follow their layers; later runs of the same container shift.

Group ids keep the analysis' rule (the first producer's module path), so a derived topology reads
exactly like a re-analysis of the edited model; tests compare the two on every family of the
evidence set. Tracing was 0.3-0.6 s per new depth history (resnet50); this is a millisecond.
"""

from __future__ import annotations

import copy
from typing import Any

from ..surgery import apply_depth, channels_of, resize_to
from .analysis import Topology
from .blocks import _dropped, _optional_arg, _refs, make_groups
from .channels import Layer


class _Paths:
    """Old path -> new path(s) for one container edit."""

    def __init__(self, container: str, plan: list[tuple[str, str, str]]) -> None:
        self.prefix = f"{container}." if container else ""
        self.kept: dict[str, str] = {}
        self.copies: dict[str, list[str]] = {}
        for new_key, kind, old_key in plan:
            if kind == "kept":
                self.kept[old_key] = new_key
            else:
                self.copies.setdefault(old_key, []).append(new_key)
        self.removed = set()

    def split(self, path: str) -> tuple[str, str] | None:
        """(child key, rest) when ``path`` lies under a child of the container."""
        if self.prefix and not path.startswith(self.prefix):
            return None
        rest = path[len(self.prefix):]
        key, _, tail = rest.partition(".")
        return key, tail

    def rename(self, path: str) -> str | None:
        """The kept path's new name; None when it lies in a removed child."""
        parts = self.split(path)
        if parts is None:
            return path
        key, tail = parts
        if key not in self.kept:
            return None if key in self.removed else path
        return self.prefix + self.kept[key] + (f".{tail}" if tail else "")

    def copy_names(self, path: str) -> list[str]:
        parts = self.split(path)
        if parts is None or parts[0] not in self.copies:
            return []
        key, tail = parts
        return [self.prefix + k + (f".{tail}" if tail else "") for k in self.copies[key]]


def _inner_groups(topo: Topology, block_prefix: str) -> set[str]:
    """Groups every member of which lies inside the block (and whose id does too)."""
    inside: dict[str, bool] = {}
    for lay in topo.layers:
        here = lay.path.startswith(block_prefix)
        for g in {lay.out_group, *(p for p, _ in lay.in_parts)}:
            if g is not None:
                inside[g] = inside.get(g, True) and here
    return {g for g, ok in inside.items() if ok and g.startswith(block_prefix)}


def derive(topo: Topology, site: dict[str, Any], plan: list[tuple[str, str, str]],
           removed: list[str]) -> Topology:
    """The topology after ``apply_depth`` carried out ``plan`` ((new key, "kept"|"copy"|"make", old key))."""
    paths = _Paths(site["container"], plan)
    paths.removed = set(removed)
    sources = {paths.prefix + old for _, kind, old in plan if kind != "kept"}
    make = site.get("make") or {}
    made = {paths.prefix + new for new, kind, _ in plan if kind == "make"}
    swap = _swap(topo, next(iter(sources))) if made else {}
    layers, group_of_new = _derive_layers(topo, paths, sources, made, swap, make)
    groups: dict[str, dict[str, Any]] = {}
    order = {gid: i for i, gid in enumerate(
        dict.fromkeys(g for lay in layers for g in [*(p for p, _ in lay.in_parts), lay.out_group] if g))}
    for new, old in group_of_new.items():
        meta = copy.deepcopy(topo.groups[old])
        meta["order"] = order.get(new, len(order))
        groups[new] = meta
    kernels: dict[str, list[str]] = {}
    for path, reasons in topo.kernels.items():
        new_path = paths.rename(path)
        if new_path is not None:
            kernels[new_path] = list(reasons)
        for name in paths.copy_names(path):
            kernels[name] = list(reasons)
    kernels = {p: kernels[p] for lay in layers if (p := lay.path) in kernels}
    _reflag(groups, layers)
    if made:  # a made block's residual add ties its input (the output group) to its output
        g_out = next(iter(swap.values()))
        groups[g_out]["flags"] = sorted({*groups[g_out]["flags"], "residual"})
    elif removed and make and make["set"] and int(site["count"]) - len(removed) == 1:
        # down to the first block, which has no residual add of its own: nothing ties the output any more
        g_out = (make_groups(topo.layers, paths.prefix + plan[int(site["start"])][2]) or (None, None))[1]
        if g_out in groups:
            groups[g_out]["flags"] = [f for f in groups[g_out]["flags"] if f != "residual"]
    delta = sum(1 for _, kind, _ in plan if kind != "kept") - len(removed)
    blocks = _shift_blocks(topo, site, paths, delta)
    return Topology(layers, groups, kernels, blocks, topo.tracer, dict(topo.probe))


def _swap(topo: Topology, src: str) -> dict[str, str]:
    """A made block reads its own output group where the block read its input group."""
    groups = make_groups(topo.layers, src)
    if groups is None:
        raise ValueError(f"block '{src}': its input and output channel groups are not clear")
    return {groups[0]: groups[1]}


def _derive_layers(topo: Topology, paths: _Paths, sources: set[str], made: set[str], swap: dict[str, str],
                   make: dict[str, Any]) -> tuple[list[Layer], dict[str, str]]:
    """Kept layers renamed, removed ones gone, each copy's (or made block's) after its source's last."""
    inner: dict[str, set[str]] = {src: _inner_groups(topo, src + ".") for src in sources}

    def gid_for(g: str | None, copy_name: str | None, src: str | None) -> str | None:
        if g is None:
            return None
        if copy_name in made:
            g = swap.get(g, g)
        if copy_name is not None and src is not None and g in inner[src]:
            return copy_name + g[len(src):]
        return paths.rename(g) or g

    layers: list[Layer] = []
    group_of_new: dict[str, str] = {}  # new group id -> old group id it was made from
    src_layers = {src: [lay for lay in topo.layers if lay.path.startswith(src + ".")] for src in sources}
    last_of = {id(v[-1]): src for src, v in src_layers.items() if v}
    for lay in topo.layers:
        new_path = paths.rename(lay.path)
        if new_path is not None:
            layers.append(_moved(lay, new_path, lambda g: gid_for(g, None, None), group_of_new))
        src = last_of.get(id(lay))
        if src is not None:
            layers.extend(_copied_layers(src, src_layers[src], paths, made, make, gid_for, group_of_new))
    return layers, group_of_new


def _copied_layers(src: str, src_layers: list[Layer], paths: _Paths, made: set[str], make: dict[str, Any],
                   gid_for: Any, group_of_new: dict[str, str]) -> list[Layer]:
    """The layers of every copy (or made block) of block ``src``, in copy order."""
    out: list[Layer] = []
    for name in paths.copy_names(src + ".x"):  # every copy of this block, after its last layer
        copy_name = name[:-2]
        for sl in src_layers:
            if copy_name in made and _dropped(sl.path[len(src) + 1:], make["drop"]):
                continue
            moved = _moved(sl, copy_name + sl.path[len(src):],
                           lambda g, c=copy_name, s=src: gid_for(g, c, s), group_of_new)
            if copy_name in made and moved.spatial == make["hw"][0]:
                moved.spatial = make["hw"][1]  # the made block runs at the block's output size
            out.append(moved)
    return out


def _reflag(groups: dict[str, dict[str, Any]], layers: list[Layer]) -> None:
    """'depthwise'/'grouped' as the analysis sets them: a group is the output of such a conv (which
    ties its input and output), so blocks removed or made take their flags with them."""
    tied: dict[str, set[str]] = {}
    for lay in layers:
        if lay.kind == "conv" and lay.group_width and lay.out_group:
            tied.setdefault(lay.out_group, set()).add("depthwise" if lay.group_width == 1 else "grouped")
    for gid, meta in groups.items():
        flags = {f for f in meta["flags"] if f not in ("depthwise", "grouped")} | tied.get(gid, set())
        meta["flags"] = sorted(flags)


def _moved(lay: Layer, path: str, gid: Any, group_of_new: dict[str, str]) -> Layer:
    out = gid(lay.out_group)
    parts = [(gid(g), s) for g, s in lay.in_parts]
    for old, new in [(lay.out_group, out), *((g, n) for (g, _), (n, _) in zip(lay.in_parts, parts, strict=True))]:
        if old is not None and new is not None:
            group_of_new.setdefault(new, old)
    return Layer(path, lay.kind, lay.cls, out, parts, lay.group_width, lay.norm_groups, lay.spatial)


def _shift_blocks(topo: Topology, site: dict[str, Any], paths: _Paths, delta: int) -> list[dict[str, Any]]:
    """The edited run's new count; later runs of the container shift; renamed paths follow."""
    blocks = []
    for b in topo.blocks:
        b = copy.deepcopy(b)
        if b["container"] == site["container"] and b["start"] > site["start"]:
            b["start"] += delta
        if b["path"] == site["path"]:
            b["count"] = int(b["count"]) + delta
        else:
            b["path"] = paths.rename(b["path"]) or b["path"]
            if b["container"] != site["container"]:
                b["container"] = paths.rename(b["container"]) or b["container"]
        blocks.append(b)
    return blocks


# --------------------------------------------------------------------------- one-block runs: a made block
#
# A run whose first block changes the shape (stride, channels) has nothing to copy once it is down
# to that block: a stage of one Bottleneck with a projection shortcut, EfficientNet-B0's
# ``features.1``/``features.7``, MobileNetV3-Small's ``features.1``. Growing such a run *makes* a
# shape-preserving version of the block: a deep copy of the block itself (its own class, so it
# exports and trains as the user's blocks do) with every conv at stride 1, the layers that read the
# block's input resized to its output width, the projection shortcut (the modules only the
# shortcut operand of its residual add uses) replaced by ``nn.Identity``, and a skip flag the
# block's constructor derives from its shape (``use_res_connect``, timm's ``has_skip``) set as
# the constructor would set it for stride 1 and input = output. What to drop and to set is read
# once from the traced graph (``make_info``), stored in the site, and the same for every later
# analysis of the block, so a derived topology still equals a re-trace.



def make_block(model: Any, topo: Topology, block_path: str, make: dict[str, Any]) -> Any:
    """The shape-preserving version of the block at ``block_path`` (a new module; not inserted)."""
    from torch import nn

    groups = make_groups(topo.layers, block_path)
    if groups is None:
        raise ValueError(f"block '{block_path}': its input and output channel groups are not clear")
    g_in, g_out = groups
    made = copy.deepcopy(model.get_submodule(block_path))
    for rel in make["drop"]:
        parent, _, name = rel.rpartition(".")
        setattr(made.get_submodule(parent) if parent else made, name,
                None if not parent and _optional_arg(made, name) else nn.Identity())
    for a in make["set"]:
        setattr(made, a, True)
    for m in made.modules():
        if isinstance(m, nn.modules.conv._ConvNd) and any(s != 1 for s in m.stride):
            m.stride = (1,) * len(m.stride)
    c_out = channels_of(topo, model, g_out)
    prefix = block_path + "."
    for lay in topo.layers:
        if not lay.path.startswith(prefix) or _dropped(lay.path[len(prefix):], make["drop"]):
            continue
        refs = _refs([lay])
        if g_in in refs:
            wanted = {g: c_out if g == g_in else channels_of(topo, model, g) for g in refs}
            resize_to(made.get_submodule(lay.path[len(prefix):]), lay, wanted)
    return made


def apply_depth_edit(model: Any, site: dict[str, Any], value: int, changed: list[Any], topo: Topology
                     ) -> tuple[list[tuple[str, str, str]], list[str]]:
    """A depth edit of run ``site``: ``surgery.apply_depth``, with the shape-preserving block made
    first when a run of one shape-changing block grows (its ``make`` info from the analysis)."""
    made = None
    n = int(site["count"])
    if value > n and n == 1 and not site.get("first_repeats") and site.get("make"):
        cont = model.get_submodule(site["container"]) if site["container"] else model
        prefix = f"{site['container']}." if site["container"] else ""
        made = make_block(model, topo, prefix + list(cont._modules)[int(site["start"])], site["make"])
    return apply_depth(model, site, value, changed, made)
