"""Predicates and small analyses over fx graphs, shared by inspection, the VCNN passes, the cost
counters and the mutation engine.

Keeping "what is a conv / a BN / a residual add / an attention block / a non-ReLU activation / a
global pool" in one place means the passes, the report, ``zenfx inspect`` and the search space can
never disagree about what a graph contains. This module is a lower floor: it imports nothing from
``zenfx.vcnn`` or the cost counters, so any of them may import it (the VCNN passes no longer import
each other for their predicates).

The shape record. ``zenfx.tracing`` writes ``node.meta["shape"]`` on every node: a ``tuple[int, ...]``
for a tensor, a tuple of such tuples for a tuple/list of tensors, ``None`` for anything else (an int,
a size, a dtype). Read it only through :func:`shape` (one tensor), :func:`tensor_shapes` (every
tensor a node yields), :func:`graph_batch` and :func:`output_shape`, never by decoding the raw value.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
OTHER_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
                                                 nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm)

ADD_TARGETS = {operator.add, operator.iadd, torch.add, "add", "add_"}
MUL_TARGETS = {operator.mul, operator.imul, torch.mul, "mul", "mul_"}
CAT_TARGETS = {torch.cat, torch.concat, *([torch.concatenate] if hasattr(torch, "concatenate") else [])}
CONV_FUNCS = {F.conv1d, F.conv2d, F.conv3d}
BN_FUNCS = {F.batch_norm, torch.batch_norm}


def node_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    try:
        return gm.get_submodule(str(node.target))
    except AttributeError:
        return None


# --------------------------------------------------------------------------- the shape record


def shape(node: Any) -> tuple[int, ...] | None:
    """The shape of the one tensor ``node`` yields; ``None`` for a non-node, a tuple of tensors or a non-tensor."""
    s = node.meta.get("shape") if isinstance(node, fx.Node) else None
    if isinstance(s, tuple) and all(isinstance(d, int) for d in s):
        return s
    return None


def tensor_shapes(node: Any) -> tuple[tuple[int, ...], ...]:
    """Shapes of every tensor ``node`` yields: one for a tensor, several for a tuple of tensors, none otherwise."""
    one = shape(node)
    if one is not None:
        return (one,)
    s = node.meta.get("shape") if isinstance(node, fx.Node) else None
    if isinstance(s, tuple) and s and all(isinstance(t, tuple) and all(isinstance(d, int) for d in t) for t in s):
        return s
    return ()


def is_tensor_node(n: Any) -> bool:
    """A node whose value is one tensor (shape-annotated), not an int, size or tuple."""
    return shape(n) is not None


def numel(dims: Iterable[int]) -> int:
    return math.prod(dims)


def graph_batch(gm: fx.GraphModule) -> int | None:
    """The batch size the graph's shapes were propagated at (its first input's leading dimension)."""
    first = next((n for n in gm.graph.nodes if n.op == "placeholder"), None)
    s = shape(first)
    return s[0] if s else None


def output_shape(gm: fx.GraphModule) -> Any:
    """Shape of the graph's output: a tuple of ints, a tuple of those (None where not a tensor), or None."""
    for node in gm.graph.nodes:
        if node.op == "output":
            arg = node.args[0]
            if isinstance(arg, fx.Node):
                return arg.meta.get("shape")
            if isinstance(arg, (tuple, list)):
                return tuple(a.meta.get("shape") if isinstance(a, fx.Node) else None for a in arg)
    return None


# --------------------------------------------------------------------------- node kinds


def attr_at(root: nn.Module, target: str) -> Any:
    """The object at a dotted ``get_attr`` target (``layer1.0.weight``); AttributeError when absent."""
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _target_in(node: fx.Node, targets: set[Any]) -> bool:
    if node.op in ("call_function", "call_method"):
        try:
            return node.target in targets
        except TypeError:
            return False
    return False


def is_conv(gm: fx.GraphModule, node: fx.Node) -> bool:
    m = node_module(gm, node)
    return isinstance(m, CONV_TYPES) or _target_in(node, CONV_FUNCS)


def is_linear(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(node_module(gm, node), nn.Linear) or _target_in(node, {F.linear})


def is_batchnorm(gm: fx.GraphModule, node: fx.Node) -> bool:
    """BatchNorm in any form: module (incl. timm's BatchNormAct2d, a BN subclass) or functional."""
    return isinstance(node_module(gm, node), BN_TYPES) or _target_in(node, BN_FUNCS)


def is_other_norm(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(node_module(gm, node), OTHER_NORM_TYPES) or _target_in(
        node, {F.layer_norm, F.group_norm, F.instance_norm})


def is_add(node: fx.Node) -> bool:
    return _target_in(node, ADD_TARGETS)


def is_tensor_add(node: fx.Node) -> bool:
    """An add of two graph tensors (a merge), as opposed to ``x + 3``."""
    return is_add(node) and len([a for a in node.args[:2] if isinstance(a, fx.Node)]) == 2


def is_residual_add(node: fx.Node) -> bool:
    """A tensor add whose two operands have the same shape: the signature of a skip connection."""
    if not is_tensor_add(node):
        return False
    a, b = node.args[0], node.args[1]
    sa, sb = shape(a), shape(b)  # type: ignore[arg-type]
    return sa is not None and sa == sb and len(sa) >= 3


def is_mul(node: fx.Node) -> bool:
    return _target_in(node, MUL_TARGETS)


def is_tensor_mul(node: fx.Node) -> bool:
    return is_mul(node) and len([a for a in node.args[:2] if isinstance(a, fx.Node)]) == 2


def is_cat(node: fx.Node) -> bool:
    return _target_in(node, CAT_TARGETS)


# --------------------------------------------------------------------------- activations

ACT_MODULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.ReLU6, nn.Mish, nn.LeakyReLU, nn.PReLU, nn.RReLU,
    nn.ELU, nn.CELU, nn.SELU, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid, nn.Hardshrink, nn.Softshrink, nn.Threshold)
# timm (and other) activation classes, matched by name when they reach the graph as leaf modules.
ACT_CLASS_NAMES = {"Swish", "SwishMe", "SwishAuto", "Mish", "MishMe", "MishAuto", "HardSwish", "HardSwishMe",
                   "HardSwishAuto", "HardSigmoid", "HardSigmoidMe", "HardSigmoidAuto", "HardMish", "HardMishMe",
                   "HardMishAuto", "GELU", "GELUTanh", "QuickGELU", "Sigmoid", "Tanh", "PReLU", "StarReLU",
                   "SquaredReLU", "MemoryEfficientSwish", "h_swish", "h_sigmoid", "HSwish", "HSigmoid"}
RELU_FUNCS = {F.relu, torch.relu, torch.relu_, F.relu_}
RELU_METHODS = {"relu", "relu_"}
ACT_FUNCS = {F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.relu6, F.mish, F.leaky_relu, F.elu, F.selu, F.celu,
             F.softplus, F.hardtanh, F.prelu, F.rrelu, F.softsign, F.tanhshrink, F.logsigmoid, F.hardshrink,
             F.softshrink, F.sigmoid, F.tanh, torch.sigmoid, torch.tanh, torch.selu, torch.celu, torch.rrelu,
             torch.prelu, torch.hardshrink, torch.sigmoid_, torch.tanh_, F.elu_, F.leaky_relu_, F.hardtanh_,
             torch.nn.functional.threshold}
ACT_METHODS = {"sigmoid", "sigmoid_", "tanh", "tanh_", "relu6", "hardswish", "hardsigmoid", "silu", "gelu", "mish"}


def loaded(package: str) -> bool:
    """Whether ``package`` is imported in this process. A model can hold a library's layers or call
    its functions only once the library is imported, so a lookup of those (timm's activations and
    drop-paths, torchvision's stochastic depth) never needs to import it: timm alone costs ~1 s
    (it pulls huggingface_hub, httpx, yaml...) of a worker's start."""
    return package in sys.modules


def timm_activation_funcs() -> frozenset[object]:
    """timm's functional activations, when fx keeps them as leaf functions; none before timm is imported."""
    return _timm_activation_funcs() if loaded("timm") else frozenset()


@functools.cache
def _timm_activation_funcs() -> frozenset[object]:
    out: set[object] = set()
    try:
        from timm.layers import activations as ta

        for name in ("swish", "mish", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "hard_mish", "gelu",
                     "gelu_tanh", "quick_gelu"):
            if hasattr(ta, name):
                out.add(getattr(ta, name))
    except Exception:  # pragma: no cover - timm missing or its layout changed
        pass
    return frozenset(out)


def is_activation_module(m: nn.Module | None) -> bool:
    """A non-ReLU activation module (torch.nn's or a childless timm-style one matched by class name)."""
    if m is None or isinstance(m, nn.ReLU):
        return False
    if isinstance(m, ACT_MODULE_TYPES):
        return True
    return type(m).__name__ in ACT_CLASS_NAMES and not any(True for _ in m.children())


def is_non_relu_activation(gm: fx.GraphModule, n: fx.Node) -> bool:
    """A node applying a non-ReLU activation: a module, a functional call or a tensor method."""
    if n.op == "call_module":
        return is_activation_module(node_module(gm, n))
    if n.op == "call_function":
        try:
            return n.target in ACT_FUNCS or n.target in timm_activation_funcs()
        except TypeError:
            return False
    if n.op == "call_method":
        return n.target in ACT_METHODS
    return False


def is_relu(gm: fx.GraphModule, n: fx.Node) -> bool:
    if n.op == "call_module":
        return isinstance(node_module(gm, n), nn.ReLU)
    if n.op == "call_function":
        return _target_in(n, RELU_FUNCS)
    return n.op == "call_method" and n.target in RELU_METHODS


# --------------------------------------------------------------------------- attention

# Attention modules that reach the graph whole (timm keeps several as fx leaves), matched by class name.
ATTN_MODULE_NAMES = {"MultiheadAttention", "Attention", "WindowAttention", "MultiHeadAttention", "SelfAttention",
                     "GPSA", "LiteMLA", "BilinearAttnTransform"}
ATTN_FUNCS = {F.scaled_dot_product_attention, F.softmax, torch.softmax, F.multi_head_attention_forward}
ATTN_METHODS = {"softmax"}


def is_attention_node(gm: fx.GraphModule, n: fx.Node) -> bool:
    """The core of a softmax-attention block: an attention module, SDPA / MHA, or a softmax
    (the explicit ``q @ k^T -> softmax -> @ v`` form; a softmax gate (SK, ResNeSt) matches too)."""
    if n.op == "call_module":
        m = node_module(gm, n)
        cls = type(m).__name__
        return (isinstance(m, (nn.MultiheadAttention, nn.Softmax)) or cls in ATTN_MODULE_NAMES
                or cls.endswith("Attention") or cls.endswith("Attn"))
    if n.op == "call_function":
        name = str(getattr(n.target, "__name__", "")).lower()
        if "attention" in name or name.endswith("attn"):
            return True  # fx-wrapped attention functions (torchvision's shifted_window_attention, ...)
        return _target_in(n, ATTN_FUNCS)
    if n.op == "call_method":
        return n.target in ATTN_METHODS
    return False


# --------------------------------------------------------------------------- data flow

# Methods whose second operand contributes only its shape / dtype.
SHAPE_ONLY_METHODS = {"expand_as", "view_as", "reshape_as", "type_as", "to"}
SIZE_METHODS = {"size", "dim", "numel", "ndimension", "nelement", "get_device", "stride", "is_contiguous"}


def _size_like(n: fx.Node) -> bool:
    """Attribute / size queries: their value is metadata of a tensor, never its data."""
    if n.op == "call_function" and n.target is getattr:
        return True
    return n.op == "call_method" and n.target in SIZE_METHODS


def _value_inputs(n: fx.Node) -> list[fx.Node]:
    args = list(n.all_input_nodes)
    if n.op == "call_method" and n.target in SHAPE_ONLY_METHODS and args:
        args = args[:1]
    return args


def input_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes whose *values* depend on a graph input (not only on parameters, constants or its size).

    ``x.shape[0]`` and friends do not count: a class token expanded to the batch size is a constant.
    """
    dep: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            dep.add(n)
        elif n.op in ("call_function", "call_method", "call_module") and not _size_like(n):
            if any(a in dep for a in _value_inputs(n)):
                dep.add(n)
    return dep


def data_inputs(n: fx.Node, dep: set[fx.Node]) -> list[fx.Node]:
    """Input-dependent tensor inputs of ``n`` whose *values* flow into it (shape-only args skipped)."""
    out: list[fx.Node] = []
    for a in _value_inputs(n):
        if a in dep and is_tensor_node(a) and a not in out:
            out.append(a)
    return out


def ancestors(n: fx.Node, include_self: bool = True) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = [n]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(cur.all_input_nodes)
    if not include_self:
        seen.discard(n)
    return seen


def exclusive_branches(a: fx.Node, b: fx.Node) -> tuple[set[fx.Node], set[fx.Node]]:
    """Nodes that feed only ``a`` and only ``b``: the two branches back to where they fork."""
    anc_a, anc_b = ancestors(a), ancestors(b)
    return anc_a - anc_b, anc_b - anc_a


def node_params(gm: fx.GraphModule, n: fx.Node) -> int:
    """Parameters a node owns: its module's for call_module, the parameter itself for get_attr."""
    if n.op == "call_module":
        m = node_module(gm, n)
        return sum(p.numel() for p in m.parameters()) if m is not None else 0
    if n.op == "get_attr":
        try:
            t = attr_at(gm, str(n.target))
        except AttributeError:
            return 0
        return t.numel() if isinstance(t, nn.Parameter) else 0
    return 0


def branch_weight(gm: fx.GraphModule, nodes: Iterable[fx.Node]) -> tuple[int, int]:
    """(conv + linear layers, parameters) on a branch: how a main branch is told from a shortcut."""
    layers = params = 0
    for n in nodes:
        if is_conv(gm, n) or is_linear(gm, n):
            layers += 1
        params += node_params(gm, n)
    return layers, params


# --------------------------------------------------------------------------- pooling and residuals


_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                   nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_REDUCTIONS = {"mean", "sum", "amax", "max", "nanmean", "logsumexp"}


def _all_ones(v: Any) -> bool:
    if isinstance(v, int):
        return v == 1
    return isinstance(v, (tuple, list)) and len(v) > 0 and all(x == 1 for x in v)


def pools_every_position(n: fx.Node, rank: int) -> bool:
    """``n`` pools all spatial positions of its rank-``rank`` (N, C, ...) input *by construction* --
    an adaptive pool to 1, a mean / sum / max over every spatial dim -- whatever the input's size, so
    an SE gate is one at a resolution where the map is already 1x1 (there the shapes alone cannot
    tell a pool from a copy)."""
    name = str(getattr(n.target, "__name__", n.target)).lower()
    if n.op == "call_module":
        owner = n.graph.owning_module
        m = owner.get_submodule(str(n.target)) if owner is not None else None
        return isinstance(m, _ADAPTIVE_POOLS) and _all_ones(m.output_size)
    if n.op not in ("call_function", "call_method"):
        return False
    if name.startswith("adaptive_") and "pool" in name:
        size = n.args[1] if len(n.args) > 1 else n.kwargs.get("output_size")
        return _all_ones(size)
    if name in _REDUCTIONS:
        dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        dims = (dims,) if isinstance(dims, int) else dims
        if not isinstance(dims, (tuple, list)) or not all(isinstance(d, int) for d in dims):
            return False
        return {d % rank for d in dims} == set(range(2, rank))
    return False


def is_global_pool_like(n: fx.Node, dep: set[fx.Node]) -> bool:
    """``n`` reduces a feature map over all spatial positions (to <= N*C values) or over all channels;
    a pool over every position by construction counts at any size (``pools_every_position``)."""
    ins = data_inputs(n, dep)
    so = shape(n)
    if len(ins) != 1 or so is None:
        return False
    si = shape(ins[0])
    if si is None or len(si) < 3:
        return False
    if numel(so) == numel(si) and pools_every_position(n, len(si)):
        return True  # a 1x1 map pooled: the same values, but structurally the global pool of a gate
    if numel(so) >= numel(si):
        return False
    if len(si) == 4:
        n_, c, h, w = si
        if h * w > 1 and numel(so) <= max(n_ * c, n_ * w):  # NCHW or NHWC spatial pool
            return True
        if c > 1 and len(so) == 4 and so[1] == 1 and so[2:] == si[2:]:  # channel pool (CBAM spatial gate)
            return True
        if w > 1 and len(so) == 4 and so[-1] == 1 and so[:3] == si[:3]:  # NHWC channel pool (norms over C)
            return True
        return False
    if len(si) == 3:  # (N, C, L) sequences: pooled over L
        return si[2] > 1 and numel(so) <= si[0] * si[1]
    return False


@dataclass(frozen=True)
class ResidualBranches:
    """The two branches of a same-shape add of two input-dependent tensors, main one first.

    ``main`` carries more parametric layers (conv + linear count, then parameter count) than
    ``shortcut``; argument order plays no part. ``tie`` means the weights are equal, so the main
    branch cannot be told from the shortcut (``main``/``shortcut`` are then in argument order).
    ``attention`` says a softmax-attention node sits on either branch.
    """

    node: fx.Node
    main: fx.Node
    shortcut: fx.Node
    main_region: frozenset[fx.Node]      # nodes feeding only the main operand
    shortcut_region: frozenset[fx.Node]  # nodes feeding only the shortcut operand
    main_weight: tuple[int, int]
    shortcut_weight: tuple[int, int]
    tie: bool
    attention: bool


def residual_branches(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node]) -> ResidualBranches | None:
    """Split a residual merge into main branch and shortcut; None when ``n`` is not a same-shape add
    of two input-dependent tensors (``x + x``, an add of a constant or a bias, a broadcast add)."""
    if not is_tensor_add(n):
        return None
    ins = data_inputs(n, dep)
    if len(ins) != 2:
        return None
    a, b = ins
    if shape(a) is None or shape(a) != shape(b):
        return None
    ex_a, ex_b = exclusive_branches(a, b)
    attention = any(is_attention_node(gm, x) for x in ex_a) or any(is_attention_node(gm, x) for x in ex_b)
    w_a, w_b = branch_weight(gm, ex_a), branch_weight(gm, ex_b)
    if w_b > w_a:
        a, b, ex_a, ex_b, w_a, w_b = b, a, ex_b, ex_a, w_b, w_a
    return ResidualBranches(n, a, b, frozenset(ex_a), frozenset(ex_b), w_a, w_b, w_a == w_b, attention)


# --------------------------------------------------------------------------- summary


def summarize(gm: fx.GraphModule) -> dict[str, Any]:
    """What ``zenfx inspect`` shows: node counts by kind and the structural features we rewrite."""
    ops = Counter(n.op for n in gm.graph.nodes)
    nodes = list(gm.graph.nodes)
    return {
        "tracer": str(gm.meta.get("zenfx_tracer", "unknown")),
        "input_size": list(gm.meta.get("zenfx_input_size", ())),
        "nodes": len(nodes),
        "nodes_by_kind": dict(sorted(ops.items())),
        "convolutions": sum(is_conv(gm, n) for n in nodes),
        "linears": sum(is_linear(gm, n) for n in nodes),
        "batchnorms": sum(is_batchnorm(gm, n) for n in nodes),
        "other_norms": sum(is_other_norm(gm, n) for n in nodes),
        "residual_adds": sum(is_residual_add(n) for n in nodes),
        "concats": sum(is_cat(n) for n in nodes),
        "multiplies": sum(is_tensor_mul(n) for n in nodes),
        "output_shape": output_shape(gm),
        "params": sum(p.numel() for p in gm.parameters()),
    }
