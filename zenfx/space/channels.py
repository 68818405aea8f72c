"""Channel-dependency analysis over an fx graph: which layer widths must change together.

Every channel group is one integer variable. Each node's tensor carries a *value*: the list of
(group, scale) parts its channel dimension is made of (one part for a conv output, several after a
channel concat, scale H*W after flattening (C,H,W)) and the index of that channel dimension. The
rules (DESIGN.md, "search half") are applied node by node:

- a conv/linear output starts a group; its input joins the producer's group(s) as ``in_parts``;
- BN/GroupNorm/LayerNorm-over-channels record the parts they normalise and pass them through;
- activations, dropout, drop-path, pooling, spatial means, flatten of (N,C,1,1) pass through;
- add/mul/sub/div of tensors with the same channel count tie the operands (residuals, SE gates);
- a depthwise conv ties its input and output; a grouped conv ties them and steps by group width;
- a channel concat and a flatten of (C,H,W) derive their value from their parts;
- anything else that touches a tensor (split/chunk/slice, shuffle, view/reshape with literal
  sizes, permute, attention, parameters read in forward, unknown ops and modules) FREEZES the
  groups involved with a reason naming the node, never assumed channel-preserving.

The image input's group and the model output's group(s) are frozen.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx
from torch import nn

from ..graph import shape as _shape  # the one reader of the tracer's shape record

INPUT_GROUP = "input"
OPAQUE_PREFIX = "@"

LEAF_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Linear, nn.GroupNorm, nn.LayerNorm,
)

def own_forward(m: nn.Module) -> bool:
    """A LayerNorm / GroupNorm subclass with a forward of its own (ConvNeXt's channels-last
    ``LayerNorm2d``: permute, normalise, permute back) is not the built-in layer: which dim it
    normalises is found by running it (``normalised_dim``), never assumed from the built-in rule."""
    base = nn.LayerNorm if isinstance(m, nn.LayerNorm) else nn.GroupNorm if isinstance(m, nn.GroupNorm) else None
    return base is not None and type(m).forward is not base.forward


def normalised_dim(m: nn.Module, shape: tuple[int, ...]) -> int | None:
    """The dim (1 or the last) of an input of rank ``len(shape)`` that the meta-device norm ``m``
    normalises, found by running it on meta inputs in which only that dim has the norm's size;
    None when not exactly one works (or ``m`` is not on meta)."""
    import torch

    size = int(m.normalized_shape[0]) if isinstance(m, nn.LayerNorm) else int(m.num_channels)  # type: ignore[arg-type]
    rank = len(shape)
    if rank < 2 or any(t.device.type != "meta" for t in [*m.parameters(), *m.buffers()]):
        return None
    found = []
    for d in sorted({1, rank - 1}):
        probe = [int(shape[0])] + [size + i for i in range(1, rank)]
        probe[d] = size
        try:
            with torch.no_grad():
                y = m(torch.empty(probe, device="meta"))
        except Exception:  # noqa: BLE001 - this dim is not the one it normalises
            continue
        if isinstance(y, torch.Tensor) and tuple(y.shape) == tuple(probe):
            found.append(d)
    return found[0] if len(found) == 1 else None


_UNARY = {
    "relu", "relu6", "silu", "gelu", "sigmoid", "hardsigmoid", "hard_sigmoid", "hardswish", "hard_swish",
    "tanh", "mish", "leaky_relu", "elu", "selu", "celu", "softplus", "hardtanh", "dropout", "dropout1d",
    "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "clamp", "clamp_min", "clamp_max",
    "clip", "contiguous", "clone", "neg", "exp", "abs", "detach", "float", "half", "to", "type_as",
    "drop_path", "stochastic_depth", "swish", "sqrt", "rsqrt", "square", "erf", "log", "softsign",
    "logsigmoid", "quick_gelu", "hard_mish", "gelu_tanh", "identity", "sign", "reciprocal",
}
_BINARY = {"add", "iadd", "sub", "isub", "mul", "imul", "truediv", "itruediv", "div", "rsub", "maximum",
           "minimum", "pow"}
_SPATIAL = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
            "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
            "adaptive_max_pool2d", "adaptive_max_pool3d", "interpolate", "upsample", "lp_pool2d", "pad"}
_REDUCE = {"mean", "sum", "amax", "amin"}
_PASS_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.Tanh, nn.Mish,
    nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)
_POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d, nn.Upsample, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
)

Parts = tuple[tuple[str, int], ...]


@dataclass
class Value:
    """The channel content of one tensor: its parts and where its channel dimension is."""

    parts: Parts
    cdim: int | None  # None: unknown layout (an opaque op's output)
    pooled: bool = False  # produced by a global pool/mean: a conv reading it is an SE-style squeeze


@dataclass
class Layer:
    """A parametric leaf layer whose shape follows channel groups."""

    path: str
    kind: str  # "conv" | "linear" | "norm"
    cls: str
    out_group: str | None = None  # conv/linear
    in_parts: list[tuple[str, int]] = field(default_factory=list)  # conv/linear input, norm's own channels
    group_width: int = 0  # grouped conv (tied in/out): channels per group
    norm_groups: int = 0  # GroupNorm: num_groups
    spatial: int = 0  # conv: output positions (H*W); linear: rows per sample. Width-independent: MACs by formula

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "cls": self.cls, "out_group": self.out_group,
                "in_parts": [list(p) for p in self.in_parts], "group_width": self.group_width,
                "norm_groups": self.norm_groups, "spatial": self.spatial}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layer:
        return cls(d["path"], d["kind"], d["cls"], d["out_group"], [(g, int(s)) for g, s in d["in_parts"]],
                   int(d["group_width"]), int(d["norm_groups"]), int(d.get("spatial", 0)))


class GroupSet:
    """Union-find over group ids; roots keep the earliest id, freezing reasons and role flags."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.order: dict[str, int] = {}
        self.reasons: dict[str, list[str]] = {}
        self.flags: dict[str, set[str]] = {}
        self.steps: dict[str, int] = {}

    def add(self, gid: str) -> str:
        if gid not in self.parent:
            self.parent[gid] = gid
            self.order[gid] = len(self.order)
            self.reasons[gid] = []
            self.flags[gid] = set()
            self.steps[gid] = 1
        return gid

    def find(self, gid: str) -> str:
        root = gid
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[gid] != root:
            self.parent[gid], gid = root, self.parent[gid]
        return root

    def _rank(self, gid: str) -> tuple[int, int]:
        return (1 if gid.startswith(OPAQUE_PREFIX) else 0, self.order[gid])

    def union(self, a: str, b: str, flag: str | None = None) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = (ra, rb) if self._rank(ra) <= self._rank(rb) else (rb, ra)
            self.parent[drop] = keep
            self.reasons[keep] += [r for r in self.reasons.pop(drop) if r not in self.reasons[keep]]
            self.flags[keep] |= self.flags.pop(drop)
            self.steps[keep] = math.lcm(self.steps[keep], self.steps.pop(drop))
            ra = keep
        if flag:
            self.flags[ra].add(flag)
        return ra

    def freeze(self, gid: str, reason: str) -> None:
        root = self.find(gid)
        if reason not in self.reasons[root]:
            self.reasons[root].append(reason)

    def flag(self, gid: str, flag: str) -> None:
        self.flags[self.find(gid)].add(flag)

    def step(self, gid: str, step: int) -> None:
        root = self.find(gid)
        self.steps[root] = math.lcm(self.steps[root], max(1, int(step)))


def _name(node: fx.Node) -> str:
    t = node.target
    if node.op == "call_method":
        name = str(t)
    else:
        name = getattr(t, "__name__", None) or str(t)
    if name.endswith("_") and not name.endswith("__") and name[:-1] in _UNARY | _BINARY:
        name = name[:-1]
    return name


def _norm_dim(d: Any, rank: int) -> int | None:
    if isinstance(d, int) and -rank <= d < rank:
        return d % rank
    return None


class ChannelAnalysis:
    """Walks graphs (eval and train traces of one model) into one GroupSet and one layer table."""

    def __init__(self) -> None:
        self.gs = GroupSet()
        self.layers: dict[str, Layer] = {}
        self.residual_owners: list[list[str]] = []  # module stacks of residual adds (for depth sites)
        self.used_modules: set[str] = set()
        self._env: dict[fx.Node, Value] = {}

    # ------------------------------------------------------------------ helpers

    def _opaque(self, node: fx.Node, reason: str) -> Value:
        gid = self.gs.add(f"{OPAQUE_PREFIX}{node.name}")
        self.gs.freeze(gid, reason)
        return Value(((gid, 1),), None)

    def _freeze(self, v: Value | None, reason: str) -> None:
        if v is not None:
            for gid, _ in v.parts:
                self.gs.freeze(gid, reason)

    def _tie(self, a: Value, b: Value, reason: str, flag: str | None = None) -> bool:
        if len(a.parts) != len(b.parts) or any(sa != sb for (_, sa), (_, sb) in zip(a.parts, b.parts, strict=True)):
            self._freeze(a, reason)
            self._freeze(b, reason)
            return False
        for (ga, _), (gb, _) in zip(a.parts, b.parts, strict=True):
            self.gs.union(ga, gb, flag)
        return True

    def _block(self, node: fx.Node, vals: list[Value], why: str) -> Value:
        reason = f"{why} at node '{node.name}'"
        for v in vals:
            self._freeze(v, reason)
        return self._opaque(node, reason)

    # ------------------------------------------------------------------ walk

    def _module_of(self, node: fx.Node) -> nn.Module:
        return self._gm.get_submodule(str(node.target))

    def run(self, gm: fx.GraphModule) -> None:
        self._env = {}
        self._gm = gm
        first_input = True
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if first_input:
                    self._input(node)
                    first_input = False
                continue
            if node.op == "output":
                for arg in node.all_input_nodes:
                    self._freeze(self._env.get(arg), "model output")
                continue
            self._visit(gm, node)

    def _input(self, node: fx.Node) -> None:
        """The image input: its channel group is frozen."""
        gid = self.gs.add(INPUT_GROUP)
        self.gs.freeze(gid, "image input")
        self._env[node] = Value(((gid, 1),), 1)

    def _visit(self, gm: fx.GraphModule, node: fx.Node) -> None:
        """One graph node: its value's channel parts from its inputs' (unknown ops freeze them)."""
        env = self._env
        ins = [env[a] for a in node.all_input_nodes if a in env]
        if node.op == "get_attr":
            if _shape(node) is not None:
                env[node] = self._opaque(node, f"parameter '{node.target}' read in forward")
            return
        if node.op == "call_module":
            self.used_modules.add(str(node.target))
            val = self._module(gm, node)
        else:
            val = self._function(node, ins)
        if val is not None:
            env[node] = val
        elif ins and node.meta.get("shape") is not None:
            env[node] = self._block(node, ins, f"'{_name(node)}' is not understood")

    # ------------------------------------------------------------------ modules

    def _module(self, gm: fx.GraphModule, node: fx.Node) -> Value | None:
        path = str(node.target)
        m = gm.get_submodule(path)
        arg = node.args[0] if node.args else None
        v = self._env.get(arg) if isinstance(arg, fx.Node) else None
        ins = [self._env[a] for a in node.all_input_nodes if a in self._env]
        if v is None:
            return self._block(node, ins, f"{type(m).__name__} '{path}' without a tensor input") if ins else None
        if isinstance(m, nn.modules.conv._ConvNd):
            return self._conv(node, path, m, v)
        if isinstance(m, nn.Linear):
            return self._linear(node, path, m, v)
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
            return self._norm(node, path, m, v)
        if len(ins) == 1 and isinstance(m, _PASS_MODULES) and _shape(node) == _shape(arg):
            return v
        if len(ins) == 1 and isinstance(m, _POOL_MODULES):
            return self._spatial(node, v, arg)
        if len(ins) == 1 and isinstance(m, nn.Flatten):
            return self._flatten(node, v, arg, m.start_dim, m.end_dim)
        kind = "attention" if "attention" in type(m).__name__.lower() else "not understood"
        return self._block(node, ins, f"{type(m).__name__} module '{path}' ({kind})")

    def _conv(self, node: fx.Node, path: str, m: Any, v: Value) -> Value:
        out_gid = self.gs.add(path)
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            return self._block(node, [v, Value(((out_gid, 1),), 1)], f"transposed conv '{path}'")
        if v.cdim != 1:
            self._freeze(v, f"conv '{path}' reads a tensor whose channel dim is unknown")
            self.gs.freeze(out_gid, f"conv '{path}' reads a tensor whose channel dim is unknown")
        layer = self._layer(path, "conv", type(m).__name__, out_gid, v)
        so = _shape(node)
        if so is not None and not layer.spatial:
            layer.spatial = math.prod(so[2:])
        if v.pooled:
            self.gs.flag(out_gid, "squeeze")
        if m.groups > 1:
            reason = None
            if len(v.parts) != 1 or v.parts[0][1] != 1:
                reason = f"grouped conv '{path}' reads a concatenated tensor"
            elif m.in_channels != m.out_channels:
                reason = f"grouped conv '{path}' has {m.in_channels} in and {m.out_channels} out channels"
            if reason:
                self._freeze(v, reason)
                self.gs.freeze(out_gid, reason)
            else:
                gw = m.in_channels // m.groups
                layer.group_width = gw
                self.gs.union(v.parts[0][0], out_gid, "depthwise" if gw == 1 else "grouped")
                self.gs.step(out_gid, gw)
        return Value(((out_gid, 1),), 1)

    def _layer(self, path: str, kind: str, cls: str, out_gid: str | None, v: Value) -> Layer:
        parts = list(v.parts)
        old = self.layers.get(path)
        if old is None:
            layer = Layer(path, kind, cls, out_gid, parts)
            self.layers[path] = layer
            return layer
        # a module called twice (shared weights, or the eval and train traces): tie the call sites
        self._tie(Value(tuple(old.in_parts), 1), v, f"'{path}' is called with differently built inputs")
        return old

    def _linear(self, node: fx.Node, path: str, m: nn.Linear, v: Value) -> Value:
        out_gid = self.gs.add(path)
        rank = len(_shape(node) or (0, 0))
        if v.cdim != rank - 1:
            reason = f"Linear '{path}' reads a tensor whose last dim is not its channel dim"
            self._freeze(v, reason)
            self.gs.freeze(out_gid, reason)
        layer = self._layer(path, "linear", type(m).__name__, out_gid, v)
        so = _shape(node)
        if so is not None and not layer.spatial:
            layer.spatial = math.prod(so[1:-1])
        return Value(((out_gid, 1),), rank - 1)

    def _norm(self, node: fx.Node, path: str, m: Any, v: Value) -> Value:
        so = _shape(node) or ()
        rank = len(so)
        want: int | None = 1
        if isinstance(m, nn.LayerNorm):
            if len(m.normalized_shape) != 1:
                return self._block(node, [v], f"LayerNorm '{path}' normalises over several dims")
            want = rank - 1  # the built-in layer normalises the last dim
        if own_forward(m):
            want = normalised_dim(m, tuple(so))
            if want is None:
                return self._block(node, [v], f"{type(m).__name__} '{path}' has a forward of its own that "
                                              "normalises neither dim 1 nor the last dim of its input")
        if v.cdim != want:
            return self._block(node, [v], f"{type(m).__name__} '{path}' normalises a dim that is not channels")
        layer = self._layer(path, "norm", type(m).__name__, None, v)
        if isinstance(m, nn.GroupNorm):
            if len(v.parts) != 1:
                return self._block(node, [v], f"GroupNorm '{path}' over a concatenated tensor")
            layer.norm_groups = m.num_groups
            self.gs.step(v.parts[0][0], m.num_groups)
        return v

    # ------------------------------------------------------------------ functions

    def _function(self, node: fx.Node, ins: list[Value]) -> Value | None:
        name = _name(node)
        if not ins:
            return None
        first = node.args[0] if node.args else None
        v = self._env.get(first) if isinstance(first, fx.Node) else None
        out_shape = node.meta.get("shape")
        if node.target is operator.getitem:
            return self._getitem(node, v, ins)
        if out_shape is None:
            return None  # x.size(), x.shape, x.dim(): reading sizes is harmless
        if not isinstance(out_shape, tuple) or not all(isinstance(d, int) for d in out_shape):
            return self._block(node, ins, f"'{name}' returns several tensors (split/chunk)")
        if name in _BINARY:
            return self._binary(node, name)
        if name in ("cat", "concat", "concatenate"):
            return self._cat(node)
        if v is None:
            return self._block(node, ins, f"'{name}' on a non-leading tensor argument")
        return self._on_leading(node, name, v, first, ins)

    def _on_leading(self, node: fx.Node, name: str, v: Value, first: Any, ins: list[Value]) -> Value | None:
        """A function of one leading tensor: channel-preserving, spatial, a reduction or a reshape;
        anything else freezes its inputs, with what it is."""
        if name in _UNARY and _shape(node) == _shape(first):
            return v
        if name in _SPATIAL:
            return self._spatial(node, v, first)
        if name in _REDUCE:
            return self._reduce(node, v, first)
        if name == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self._flatten(node, v, first, start, end)
        if name in ("view", "reshape"):
            return self._view(node, v, first, name)
        if name in ("squeeze", "unsqueeze"):
            return self._squeeze(node, v, first, name)
        what = {"permute": "permute moves the channel dim", "transpose": "transpose moves the channel dim",
                "channel_shuffle": "channel shuffle", "split": "split", "chunk": "chunk",
                "scaled_dot_product_attention": "attention", "softmax": "softmax over a tensor",
                "multi_head_attention_forward": "attention"}.get(name, f"'{name}' is not understood")
        return self._block(node, ins, what)

    def _getitem(self, node: fx.Node, v: Value | None, ins: list[Value]) -> Value | None:
        src = node.args[0]
        if not isinstance(src, fx.Node) or v is None:
            return None
        src_shape = _shape(src)
        if src_shape is None:
            # an element of a split/chunk result: its producer is already frozen
            return self._block(node, ins, "an element of a split/chunk result") if node.meta.get("shape") else None
        idx = node.args[1]
        idx = idx if isinstance(idx, tuple) else (idx,)
        if v.cdim is None:
            return self._block(node, ins, "slicing a tensor of unknown layout")
        dropped = 0
        for i, item in enumerate(idx):
            if i == v.cdim:
                if item == slice(None):
                    return Value(v.parts, v.cdim - dropped)
                break
            if item is Ellipsis:
                break
            if isinstance(item, int):
                dropped += 1
            elif item != slice(None):
                break
        return self._block(node, ins, "slicing that touches the channel dim")

    def _binary(self, node: fx.Node, name: str) -> Value | None:
        out_shape = _shape(node)
        if out_shape is None:
            return None
        operands = [a for a in list(node.args[:2]) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
        known = [(a, self._env[a]) for a in operands if a in self._env]
        found = self._tied_operands(node, name, known, out_shape)
        if isinstance(found, Value):
            return found  # blocked: mixed layouts
        tied, cdim = found
        if not tied:
            return known[0][1] if known else None
        base = next((t for t in tied if t.cdim is not None), None)
        if base is None:
            return self._block(node, [v for _, v in known], f"'{name}' of tensors of unknown layout")
        equal = len(operands) == 2 and all(_shape(a) == out_shape for a in operands)
        flag = "residual" if name in ("add", "iadd") and equal and len(out_shape) >= 3 else None
        if flag:
            self.residual_owners.append(list((node.meta.get("nn_module_stack") or {}).keys()))
        self._tie_operands(node, name, base, tied, flag)
        return Value(base.parts, cdim)

    def _tied_operands(self, node: fx.Node, name: str, known: list[tuple[fx.Node, Value]],
                       out_shape: tuple[int, ...]) -> tuple[list[Value], int | None] | Value:
        """The operands whose channels the result carries (not those broadcast along channels), and
        the result's channel dim; a blocked Value when they disagree on where the channels are."""
        rank = len(out_shape)
        tied: list[Value] = []
        cdim: int | None = None
        for a, val in known:
            s = _shape(a)
            if s is None:
                continue
            if val.cdim is None:
                if any(d != 1 for d in s):
                    tied.append(val)
                continue
            c = val.cdim + (rank - len(s))
            if s[val.cdim] == 1 and out_shape[c] != 1:
                continue  # broadcast along channels (a spatial gate, a scalar-like tensor)
            if cdim is not None and c != cdim:
                return self._block(node, [v for _, v in known], f"'{name}' mixes channel layouts")
            cdim = c
            tied.append(val)
        return tied, cdim

    def _tie_operands(self, node: fx.Node, name: str, base: Value, tied: list[Value], flag: str | None) -> None:
        """Tie every operand to ``base``; one of unknown layout freezes it, saying why."""
        for t in tied:
            if t is base:
                continue
            if t.cdim is None:
                why = self.gs.reasons[self.gs.find(t.parts[0][0])]
                what = why[0].split(" at node ")[0] if why else "an opaque tensor"
                self._freeze(base, f"'{name}' with a tensor frozen by: {what} (node '{node.name}')")
                continue
            self._tie(base, t, f"'{name}' of tensors with different channel parts at node '{node.name}'", flag)

    def _spatial(self, node: fx.Node, v: Value, src: Any) -> Value:
        si, so = _shape(src), _shape(node)
        if v.cdim == 1 and si is not None and so is not None and len(si) == len(so) and si[:2] == so[:2]:
            name = _name(node) if node.op != "call_module" else type(self._module_of(node)).__name__.lower()
            glob = "adaptive" in name and all(d == 1 for d in so[2:])
            return Value(v.parts, v.cdim, glob)
        return self._block(node, [v], f"'{_name(node) if node.op != 'call_module' else node.target}' changes channels")

    def _reduce(self, node: fx.Node, v: Value, src: Any) -> Value:
        si = _shape(src)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        if si is None or dims is None or v.cdim is None:
            return self._block(node, [v], f"'{_name(node)}' over all dims")
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        nd = [_norm_dim(d, len(si)) for d in dims]
        if None in nd or v.cdim in nd or 0 in nd:
            return self._block(node, [v], f"'{_name(node)}' reduces the channel or batch dim")
        cdim = v.cdim if keep else v.cdim - sum(1 for d in nd if d < v.cdim)  # type: ignore[operator]
        return Value(v.parts, cdim, True)

    def _flatten(self, node: fx.Node, v: Value, src: Any, start: Any, end: Any) -> Value:
        si = _shape(src)
        if si is None or v.cdim is None:
            return self._block(node, [v], "flatten of a tensor of unknown layout")
        s, e = _norm_dim(start, len(si)), _norm_dim(end, len(si))
        if s is None or e is None:
            return self._block(node, [v], "flatten with unusual dims")
        if s > v.cdim or e < v.cdim:
            if s <= v.cdim:
                return self._block(node, [v], "flatten merges the channel dim")
            return Value(v.parts, v.cdim)
        if s == v.cdim and e == len(si) - 1:
            scale = math.prod(si[v.cdim + 1:])
            return Value(tuple((g, k * scale) for g, k in v.parts), v.cdim)
        return self._block(node, [v], "flatten merges the channel dim with the batch dim")

    def _view(self, node: fx.Node, v: Value, src: Any, name: str) -> Value:
        si = _shape(src)
        sizes = list(node.args[1:])
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = list(sizes[0])
        if si is not None and v.cdim == 1 and len(sizes) == 2 and isinstance(sizes[0], fx.Node) and sizes[1] == -1:
            return self._flatten(node, v, src, 1, -1)
        literal = ", ".join(str(s) if not isinstance(s, fx.Node) else s.name for s in sizes)
        return self._block(node, [v], f"{name}({literal}) reshapes channels")

    def _squeeze(self, node: fx.Node, v: Value, src: Any, name: str) -> Value:
        si, so = _shape(src), _shape(node)
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if si is None or so is None or v.cdim is None or dim is None:
            return self._block(node, [v], f"{name} without a dim")
        d = _norm_dim(dim, len(si) if name == "squeeze" else len(so))
        if d is not None and d > v.cdim:
            return Value(v.parts, v.cdim)
        return self._block(node, [v], f"{name}({dim}) moves the channel dim")

    def _cat(self, node: fx.Node) -> Value:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        vals = [self._env.get(t) for t in (tensors or [])]
        if not vals or any(x is None for x in vals):
            return self._block(node, [x for x in vals if x is not None], "concat of unknown tensors")
        rank = len(_shape(node) or ())
        cd = {x.cdim for x in vals}  # type: ignore[union-attr]
        d = _norm_dim(dim, rank)
        if len(cd) != 1 or None in cd or d is None:
            return self._block(node, vals, "concat of tensors of unknown layout")  # type: ignore[arg-type]
        c = cd.pop()
        if d == c:
            return Value(tuple(p for x in vals for p in x.parts), c)  # type: ignore[union-attr]
        if d == 0:
            return self._block(node, vals, "concat along the batch dim")  # type: ignore[arg-type]
        for x in vals[1:]:
            self._tie(vals[0], x, f"concat along dim {d} at node '{node.name}'")  # type: ignore[arg-type]
        return vals[0]  # type: ignore[return-value]
