"""The search space of a model: channel groups, kernel sites and repeatable block runs.

``zenfx.space(model)`` answers "what can evolution change in this network, and what not, why?".
The answer has two layers:

- a :class:`Topology`, the width-independent structure found by the channel analysis
  (``space_graph``) plus the kernel and depth sites and every freezing reason. It depends only on
  the seed and on the depth edits applied so far, so it is computed once per seed (probed, and
  cached on disk, see ``space_cache``) and once per depth-edit history (in memory);
- a :class:`SearchSpace`, that topology read against one concrete model: current channels,
  kernels and block counts, and the allowed steps and ranges that follow from them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import NotTraceableError
from ..surgery import norm_channels
from ..tracing import ShapeInterpreter, shape_error
from .channels import INPUT_GROUP, LEAF_TYPES, OPAQUE_PREFIX, ChannelAnalysis, Layer, own_forward

KERNEL_CHOICES = (3, 5, 7)
WIDTH_RATIOS = (2.5, 2.0, 1.5, 1.25, 1 / 1.25, 1 / 1.5, 1 / 2, 1 / 2.5)
MAX_WIDTH_FACTOR = 4  # a group may grow to 4x its channels at analysis time per edit
BASE_STEP = 8


# --------------------------------------------------------------------------- records


@dataclass
class ChannelGroup:
    """One integer variable: the channel count shared by every member layer."""

    id: str
    channels: int
    step: int
    min: int
    max: int
    role: str  # stage | stem | inner | expansion | squeeze | head | input | output | other
    free: bool
    reason: str | None
    members: list[str]
    ratio: float | None = None  # expansion: hidden width / block input width

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class KernelSite:
    path: str
    kernel: int
    choices: list[int]
    free: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DepthSite:
    """A run of blocks in one container: the first (possibly shape-changing) block and its repeats."""

    path: str  # the container's path when the run is the whole container, else the run's first block
    container: str
    start: int
    count: int
    min: int
    max: int
    free: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Topology:
    """Width-independent structure: layers and the groups they follow, kernel and depth sites."""

    layers: list[Layer]
    groups: dict[str, dict[str, Any]]  # root id -> {"order", "reasons", "flags", "step"}
    kernels: dict[str, list[str]]  # conv path -> freezing reasons
    blocks: list[dict[str, Any]]  # {"path", "container", "start", "count", "reasons"}
    tracer: str = ""
    probe: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [lay.to_dict() for lay in self.layers], "groups": self.groups, "kernels": self.kernels,
                "blocks": self.blocks, "tracer": self.tracer, "probe": self.probe}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Topology:
        return cls([Layer.from_dict(x) for x in d["layers"]], d["groups"], d["kernels"], d["blocks"],
                   d.get("tracer", ""), d.get("probe", {}))

    def layers_of(self, gid: str) -> list[Layer]:
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for lay in self.layers:
                for g in {lay.out_group, *(p for p, _ in lay.in_parts)}:
                    if g is not None:
                        index.setdefault(g, []).append(lay)
            self.__dict__["_index"] = index
        return index.get(gid, [])

    def freeze(self, kind: str, target: str, reason: str) -> None:
        if kind == "width":
            self.groups[target]["reasons"].append(reason)
        elif kind == "kernel":
            self.kernels[target].append(reason)
        else:
            next(b for b in self.blocks if b["path"] == target)["reasons"].append(reason)


@dataclass
class SearchSpace:
    """A topology read against one model: what each free group/kernel/run is now and may become."""

    model: str
    input_size: tuple[int, int, int]
    groups: list[ChannelGroup]
    kernels: list[KernelSite]
    blocks: list[DepthSite]
    topology: Topology

    def group(self, gid: str) -> ChannelGroup | None:
        return next((g for g in self.groups if g.id == gid), None)

    def kernel(self, path: str) -> KernelSite | None:
        return next((k for k in self.kernels if k.path == path), None)

    def block(self, path: str) -> DepthSite | None:
        return next((b for b in self.blocks if b.path == path), None)

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: {"free": sum(x.free for x in xs), "frozen": sum(not x.free for x in xs)}
                for name, xs in (("groups", self.groups), ("kernels", self.kernels), ("blocks", self.blocks))}

    def size_log10(self) -> float:
        """log10 of the number of distinct one-shot settings: widths x kernels x depths of the free sites."""
        total = 0.0
        for g in self.groups:
            if g.free:
                total += math.log10((g.max - g.min) // g.step + 1)
        total += sum(math.log10(len(k.choices)) for k in self.kernels if k.free)
        total += sum(math.log10(b.max - b.min + 1) for b in self.blocks if b.free)
        return total

    def frozen_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for x in [*self.groups, *self.kernels, *self.blocks]:
            if not x.free and x.reason:
                key = x.reason.split("; ")[0]
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_size": list(self.input_size), "counts": self.counts(),
                "size_log10": round(self.size_log10(), 3),
                "groups": [g.to_dict() for g in self.groups], "kernels": [k.to_dict() for k in self.kernels],
                "blocks": [b.to_dict() for b in self.blocks], "probe": self.topology.probe,
                "tracer": self.topology.tracer}


# --------------------------------------------------------------------------- tracing


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose parameters and buffers live on the meta device (no data is copied)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    return copy.deepcopy(model, memo)


def analysis_trace(model: nn.Module) -> fx.GraphModule:
    """Trace with Conv/BN/Linear/GroupNorm/LayerNorm subclasses as leaves (timm's BatchNormAct2d,
    Conv2dSame stay one node each), adding timm's not-trace registries only if that fails."""
    from ..tracing import TRACER_LEAF, PathTrackingTracer, run_tracer, timm_registries

    try:
        return run_tracer(model, PathTrackingTracer(leaf_types=LEAF_TYPES), TRACER_LEAF)
    except Exception as first:
        leaf, funcs = timm_registries()
        tracer = PathTrackingTracer(leaf_types=LEAF_TYPES + tuple(leaf), autowrap_functions=tuple(funcs))
        try:
            return run_tracer(model, tracer, TRACER_LEAF + "+timm")
        except Exception:
            why = str(first).splitlines()[0] if str(first) else ""
            raise NotTraceableError(f"cannot trace {type(model).__name__} for the space analysis: "
                                    f"{type(first).__name__}: {why}") from None


_PLAIN_CONV_FORWARDS = {nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward}


def _fast_shape(m: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    """Output shape of a plain conv / linear by formula (meta convolutions cost ~5 ms each in
    Python, which made the probe slow); None for anything else, which then runs for real on meta."""
    if isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward:
        if x.shape[-1] != m.in_features:
            raise RuntimeError(f"Linear expects {m.in_features} input features, got {x.shape[-1]}")
        return (*x.shape[:-1], m.out_features)
    if not isinstance(m, nn.modules.conv._ConvNd) or isinstance(m, nn.modules.conv._ConvTransposeNd):
        return None
    nd = len(m.kernel_size)
    if x.dim() != nd + 2:
        return None
    if x.shape[1] != m.in_channels:
        raise RuntimeError(f"conv expects {m.in_channels} input channels, got {x.shape[1]}")
    spatial = x.shape[2:]
    if type(m).forward in _PLAIN_CONV_FORWARDS and not isinstance(m.padding, str) and m.padding_mode == "zeros":
        out = [(h + 2 * p - d * (k - 1) - 1) // s + 1
               for h, p, d, k, s in zip(spatial, m.padding, m.dilation, m.kernel_size, m.stride, strict=True)]
    elif "same" in type(m).__name__.lower() and all(p == 0 for p in m.padding):  # timm Conv2dSame: dynamic pad
        out = [-(-h // s) for h, s in zip(spatial, m.stride, strict=True)]
    else:
        return None
    if min(out) < 1:
        raise RuntimeError(f"conv output would be empty for input {tuple(x.shape)}")
    return (x.shape[0], m.out_channels, *out)


class _FastShapes(ShapeInterpreter):
    """Shape propagation on meta tensors for the analysis: norm layers (BN, GroupNorm, LayerNorm,
    timm's BatchNormAct2d) keep their input's shape, so they are skipped (meta batch_norm runs a
    slow Python decomposition: it was half the analysis time on EfficientNet)."""

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        m = self.fetch_attr(target)
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and len(args) == 1 and not kwargs:
            fast = _fast_shape(m, x)
            if fast is not None:
                return torch.empty(fast, dtype=x.dtype, device="meta")
        norm = isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))
        if norm and isinstance(x, torch.Tensor) and not own_forward(m):  # an own forward (LayerNorm2d) runs for real
            want = m.normalized_shape if isinstance(m, nn.LayerNorm) else (
                (m.num_channels,) if isinstance(m, nn.GroupNorm) else (m.num_features,))
            got = tuple(x.shape[-len(want):]) if isinstance(m, nn.LayerNorm) else tuple(x.shape[1:2])
            if tuple(want) != got:
                raise RuntimeError(f"{type(m).__name__} expects {tuple(want)} channels, got {got}")
            return x
        return super().call_module(target, args, kwargs)

    def failure(self, n: fx.Node, exc: Exception) -> Exception:
        return shape_error(self.module, n, self.env, exc)  # the analysis names the layer, whatever the cause


def _propagate(gm: fx.GraphModule, input_size: Sequence[int]) -> Any:
    with torch.no_grad():
        return _FastShapes(gm).run(torch.empty((2, *(int(s) for s in input_size)), device="meta"))


def traced_output_shapes(model: nn.Module, input_size: Sequence[int]) -> list[Any]:
    """Re-trace ``model`` in eval and train mode and propagate shapes (batch 2): the output shape trees."""
    out = []
    was = model.training
    try:
        for mode in (False, True):
            model.train(mode)
            out.append(_tree(_propagate(analysis_trace(model), input_size)))
    finally:
        model.train(was)
    return out


def _tree(y: Any) -> Any:
    if isinstance(y, torch.Tensor):
        return tuple(y.shape)
    if isinstance(y, (tuple, list)):
        return [_tree(v) for v in y]
    if isinstance(y, dict):
        return {k: _tree(v) for k, v in y.items()}
    return None


def _signature(gm: fx.GraphModule) -> list[tuple[str, str]]:
    return [(n.op, str(n.target)) for n in gm.graph.nodes]


def _traced_graphs(model: nn.Module, input_size: Sequence[int], train: bool = True
                   ) -> tuple[fx.GraphModule, fx.GraphModule | None]:
    """The eval graph and, when it traces and differs, the train graph (training-only branches)."""
    was = model.training
    try:
        model.eval()
        ge = analysis_trace(model)
        _propagate(ge, input_size)
        gt = None
        if train:
            try:
                model.train()
                gt = analysis_trace(model)
                if _signature(gt) == _signature(ge):
                    gt = None
                else:
                    _propagate(gt, input_size)
            except Exception:
                gt = None
    finally:
        model.train(was)
    return ge, gt


# --------------------------------------------------------------------------- analysis


def _stack_paths(node: fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for key, val in stack.items():
        path = val[0] if isinstance(val, tuple) and val and isinstance(val[0], str) else str(key)
        out.append(path)
    if node.op == "call_module":
        out.append(str(node.target))
    return out


def _kernel_eligible(m: nn.Module) -> bool:
    if not isinstance(m, nn.modules.conv._ConvNd) or isinstance(m, nn.modules.conv._ConvTransposeNd):
        return False
    k = tuple(m.kernel_size)
    if len(set(k)) != 1 or k[0] not in KERNEL_CHOICES:
        return False
    if isinstance(m.padding, str):
        return m.padding == "same"
    same = tuple(d * (kk - 1) // 2 for d, kk in zip(m.dilation, k, strict=True))
    if tuple(m.padding) == same:
        return True
    return "same" in type(m).__name__.lower() and all(p == 0 for p in m.padding)


def _parent(model: nn.Module, path: str) -> nn.Module | None:
    if not path:
        return None
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    try:
        return model.get_submodule(parent)
    except AttributeError:
        return None


def _block_io(gm: fx.GraphModule) -> dict[str, tuple[Any, Any]]:
    """For every module path: (input shape, output shape) of its span in the graph."""
    inside: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        for p in dict.fromkeys(_stack_paths(node)):  # ordered: no set of strings
            inside.setdefault(p, []).append(node)
    io: dict[str, tuple[Any, Any]] = {}
    for p, nodes in inside.items():
        members = set(nodes)
        ins = [a for n in nodes for a in n.all_input_nodes
               if a not in members and isinstance(a.meta.get("shape"), tuple)]
        outs = [n for n in nodes if any(u not in members for u in n.users)]
        io[p] = (ins[0].meta.get("shape") if ins else None, outs[-1].meta.get("shape") if len(outs) == 1 else None)
    return io


class _RunFinder:
    """Block runs of one model: in each Sequential / ModuleList, a block (a child holding convs with
    one input and one output in the graph) followed by repeatable blocks (same shape in and out,
    their class owns a residual add); a run of one where that block repeats, or can be made to
    (a lone shape-changing block of a kind that repeats elsewhere or flags its skip)."""

    def __init__(self, model: nn.Module, gm: fx.GraphModule, ca: ChannelAnalysis) -> None:
        self.model, self.gm = model, gm
        self.owners = self._residual_owners(ca)
        self.io = _block_io(gm)
        self.layers = list(ca.layers.values())
        self.convs = [lay.path for lay in self.layers if lay.kind == "conv"]
        self.owner_classes = {type(model.get_submodule(p)) for p in self.owners}

    def _residual_owners(self, ca: ChannelAnalysis) -> set[str]:
        owners: set[str] = set()
        for stack in ca.residual_owners:
            for p in reversed(stack):
                if isinstance(_parent(self.model, p), (nn.Sequential, nn.ModuleList)):
                    owners.add(p)
                    break
        return owners

    def lone_block(self, p: str) -> bool:
        """A block alone in its run that is a block of the kind that repeats elsewhere (its class
        owns a residual add) or that says by a flag whether it has a skip (MBConv, timm's blocks)."""
        from .blocks import has_skip_flag

        m = self.model.get_submodule(p)
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            return False
        return type(m) in self.owner_classes or has_skip_flag(m)

    def is_block(self, p: str) -> bool:
        return any(c.startswith(p + ".") for c in self.convs) and p in self.io

    def repeatable(self, p: str) -> bool:
        i, o = self.io.get(p, (None, None))
        return self.is_block(p) and p in self.owners and i is not None and i == o

    def sites(self) -> list[dict[str, Any]]:
        sites: list[dict[str, Any]] = []
        taken: list[str] = []
        for cpath, cont in self.model.named_modules():
            if not isinstance(cont, (nn.Sequential, nn.ModuleList)):
                continue
            if any(cpath.startswith(t + ".") for t in taken):
                continue
            for site in self._runs(cpath, cont):
                sites.append(site)
                start = int(site["start"])
                taken.extend(self._paths(cpath, cont)[start:start + int(site["count"])])
        return sites

    @staticmethod
    def _paths(cpath: str, cont: nn.Module) -> list[str]:
        return [f"{cpath}.{k}" if cpath else k for k in cont._modules]

    def _runs(self, cpath: str, cont: nn.Module) -> list[dict[str, Any]]:
        from .blocks import make_info

        paths = self._paths(cpath, cont)
        runs: list[dict[str, Any]] = []
        i = 0
        while i < len(paths):
            if not self.is_block(paths[i]):
                i += 1
                continue
            j = i + 1
            while j < len(paths) and self.repeatable(paths[j]):
                j += 1
            first_repeats = self.repeatable(paths[i])
            make = None if first_repeats else make_info(self.model, self.gm, paths[i], self.io[paths[i]], self.layers)
            lone = j - i == 1 and make is not None and self.lone_block(paths[i])
            if j - i >= 2 or first_repeats or lone:  # a lone repeatable block is a run of one, anywhere
                whole = i == 0 and j == len(paths)
                runs.append({"path": cpath if whole and cpath else paths[i], "container": cpath, "start": i,
                             "count": j - i, "reasons": [], "first_repeats": first_repeats, "make": make})
            i = max(j, i + 1)
        return runs


def _depth_sites(model: nn.Module, gm: fx.GraphModule, ca: ChannelAnalysis) -> list[dict[str, Any]]:
    return _RunFinder(model, gm, ca).sites()


def analyse(model: nn.Module, input_size: Sequence[int]) -> Topology:
    """Static analysis of ``model`` (any device; analysed on a meta copy unless already on meta)."""
    on_meta = all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])
    work = model if on_meta else meta_copy(model)
    ge, gt = _traced_graphs(work, input_size)
    ca = ChannelAnalysis()
    ca.run(ge)
    if gt is not None:
        ca.run(gt)
    gs = ca.gs
    layers = []
    for lay in ca.layers.values():
        lay.out_group = gs.find(lay.out_group) if lay.out_group else None
        lay.in_parts = [(gs.find(g), s) for g, s in lay.in_parts]
        layers.append(lay)
    roots = sorted({g for lay in layers for g in [lay.out_group, *(p for p, _ in lay.in_parts)] if g},
                   key=lambda r: gs.order[r])
    groups = {r: {"order": gs.order[r], "reasons": list(gs.reasons[r]), "flags": sorted(gs.flags[r]),
                  "step": gs.steps[r]} for r in roots}
    kernels: dict[str, list[str]] = {}
    for lay in layers:
        if lay.kind == "conv" and _kernel_eligible(work.get_submodule(lay.path)):
            kernels[lay.path] = []
    blocks = _depth_sites(work, ge, ca)
    _check_block_use(work, blocks, ca)
    return Topology(layers, groups, kernels, blocks, str(ge.meta.get("zenfx_tracer", "")))


def _check_block_use(model: nn.Module, blocks: list[dict[str, Any]], ca: ChannelAnalysis) -> None:
    """A container whose blocks are not all called by the traced forward (``for i in range(self.n)``
    with n smaller than the container) cannot be deepened: added blocks would be ignored."""
    for site in blocks:
        cont = model.get_submodule(site["container"]) if site["container"] else model
        keys = list(cont._modules)[site["start"]:site["start"] + site["count"]]
        for k in keys:
            p = f"{site['container']}.{k}" if site["container"] else k
            owned = [n for n, _ in model.get_submodule(p).named_modules() if n]
            if owned and not any(f"{p}.{n}" in ca.used_modules for n in owned):
                site["reasons"].append(f"block '{p}' is never called by forward")
                break


# --------------------------------------------------------------------------- reading a topology


def _pow2_step(channels: int) -> int:
    step = 1
    while step < BASE_STEP and channels % (step * 2) == 0:
        step *= 2
    return step


def group_channels(topo: Topology, model: nn.Module) -> dict[str, int]:
    """Current channels of every group, read from the model's layers."""
    out: dict[str, int] = {}
    for lay in topo.layers:
        m = model.get_submodule(lay.path)
        if lay.kind == "conv":
            out.setdefault(lay.out_group, m.out_channels)  # type: ignore[arg-type]
            cin = m.in_channels
        elif lay.kind == "linear":
            out.setdefault(lay.out_group, m.out_features)  # type: ignore[arg-type]
            cin = m.in_features
        else:
            cin = norm_channels(m)
        if len(lay.in_parts) == 1:
            g, s = lay.in_parts[0]
            out.setdefault(g, cin // s)
    return out


def _role(gid: str, meta: dict[str, Any], topo: Topology, chans: dict[str, int]) -> tuple[str, float | None]:
    flags = set(meta["flags"])
    if gid == INPUT_GROUP:
        return "input", None
    if any("model output" in r for r in meta["reasons"]):
        return "output", None
    members = topo.layers_of(gid)
    if "residual" in flags:
        return "stage", None
    if any(lay.kind == "conv" and lay.in_parts == [(INPUT_GROUP, 1)] and lay.out_group == gid for lay in members):
        return "stem", None
    if "depthwise" in flags:
        for lay in members:
            if lay.out_group == gid and lay.kind == "conv" and len(lay.in_parts) == 1 and lay.in_parts[0][0] != gid:
                src = chans.get(lay.in_parts[0][0])
                return "expansion", (round(chans[gid] / src, 3) if src else None)
        return "inner", None
    if "squeeze" in flags:
        return "squeeze", None
    if any(lay.kind == "linear" and any(g == gid for g, _ in lay.in_parts) for lay in members):
        return "head", None
    return "inner", None


def _members(gid: str, topo: Topology) -> list[str]:
    out = []
    for lay in topo.layers_of(gid):
        if lay.kind == "norm":
            out.append(lay.path)
            continue
        if lay.out_group == gid:
            out.append(f"{lay.path} (out)")
        for i, (g, s) in enumerate(lay.in_parts):
            if g == gid and lay.out_group != gid:
                part = f", part {i + 1}/{len(lay.in_parts)}" if len(lay.in_parts) > 1 else ""
                out.append(f"{lay.path} (in{part}{f', x{s}' if s != 1 else ''})")
    return out


def _reason(reasons: list[str]) -> str | None:
    if not reasons:
        return None
    head = "; ".join(reasons[:3])
    return head + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")


def estimate_macs(model: nn.Module, topo: Topology) -> int:
    """Multiply-accumulates of one sample's forward pass, by formula over the topology's convs and
    linears (their output sizes do not depend on widths or kernels): about a millisecond, where a
    meta-device count runs every layer. Equals ``count_macs`` for nets whose MACs are all in
    conv/linear modules (CNNs); attention matmuls and functional convs are not counted."""
    total = 0
    for lay in topo.layers:
        if lay.kind == "norm" or not lay.spatial:
            continue
        m = model.get_submodule(lay.path)
        if lay.kind == "conv":
            total += m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size) * lay.spatial
        else:
            total += m.in_features * m.out_features * lay.spatial
    return int(total)


def group_limits(meta: dict[str, Any], channels: int) -> tuple[int, int, int]:
    """(step, min, max) of a group with ``channels`` now: the step is the group's structural step
    (group width, GroupNorm groups) times the largest power of two up to 8 dividing its channels."""
    step = math.lcm(int(meta["step"]), _pow2_step(channels)) if channels else 1
    return step, step, max(step, (MAX_WIDTH_FACTOR * channels) // step * step)


def depth_limits(site: dict[str, Any]) -> tuple[int, int]:
    """A run keeps its first block; when that block changes the shape, the run keeps one copyable
    block too unless a shape-preserving version of the first can be made (``site["make"]``: then it
    goes down to 1 and grows again by a made block). It may grow to twice its size (at least +2, at
    most +8)."""
    count = int(site["count"])
    lo = 1 if site.get("first_repeats") or site.get("make") else 2
    return lo, min(max(2 * count, count + 2), count + 8)


def read_space(topo: Topology, model: nn.Module, name: str, input_size: Sequence[int]) -> SearchSpace:
    """The SearchSpace of ``model`` under ``topo``: current values, steps and ranges."""
    return space_of_values(topo, group_channels(topo, model), kernel_sizes(topo, model), name, input_size)


def kernel_sizes(topo: Topology, model: nn.Module) -> dict[str, int]:
    """The current kernel of every kernel site."""
    return {path: int(model.get_submodule(path).kernel_size[0]) for path in topo.kernels}  # type: ignore[index]


def space_of_values(topo: Topology, chans: dict[str, int], kernels: dict[str, int], name: str,
                    input_size: Sequence[int]) -> SearchSpace:
    """``read_space`` from the values alone (each group's channels, each site's kernel): all it
    reads from a model, so a width or kernel edit can be applied to a space without one."""
    groups = []
    for gid, meta in sorted(topo.groups.items(), key=lambda kv: kv[1]["order"]):
        c = chans.get(gid, 0)
        if gid.startswith(OPAQUE_PREFIX) and not topo.layers_of(gid):
            continue
        step, lo, hi = group_limits(meta, c)
        role, ratio = _role(gid, meta, topo, chans)
        reasons = list(meta["reasons"])
        if c % step:
            reasons.append(f"{c} channels are not a multiple of the step {step}")
        groups.append(ChannelGroup(gid, c, step, lo, hi, role, not reasons, _reason(reasons),
                                   _members(gid, topo), ratio))
    sites = [KernelSite(path, int(kernels[path]), list(KERNEL_CHOICES), not reasons, _reason(reasons))
             for path, reasons in topo.kernels.items()]
    blocks = []
    for b in topo.blocks:
        n = int(b["count"])
        lo, hi = depth_limits(b)
        blocks.append(DepthSite(b["path"], b["container"], int(b["start"]), n, lo, hi,
                                not b["reasons"], _reason(b["reasons"])))
    return SearchSpace(name, tuple(int(s) for s in input_size), groups, sites, blocks, topo)  # type: ignore[arg-type]
