"""Small predicates over fx nodes, shared by inspection, the VCNN passes and the cost counters.

Keeping "what is a conv / a BN / a residual add" in one place means the passes, the report and
``zenfx inspect`` can never disagree about what a graph contains.
"""

from __future__ import annotations

import operator
from collections import Counter
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
CAT_TARGETS = {torch.cat, torch.concat, torch.concatenate} if hasattr(torch, "concatenate") else {torch.cat, torch.concat}
CONV_FUNCS = {F.conv1d, F.conv2d, F.conv3d}
BN_FUNCS = {F.batch_norm, torch.batch_norm}


def node_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    try:
        return gm.get_submodule(str(node.target))
    except AttributeError:
        return None


def shape(node: fx.Node) -> tuple[int, ...] | None:
    s = node.meta.get("shape")
    if isinstance(s, tuple) and all(isinstance(d, int) for d in s):
        return s
    return None


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """Direct positional/keyword inputs that are graph nodes (not constants)."""
    return [a for a in node.all_input_nodes]


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


def output_shape(gm: fx.GraphModule) -> Any:
    for node in gm.graph.nodes:
        if node.op == "output":
            arg = node.args[0]
            if isinstance(arg, fx.Node):
                return arg.meta.get("shape")
            if isinstance(arg, (tuple, list)):
                return tuple(a.meta.get("shape") if isinstance(a, fx.Node) else None for a in arg)
    return None


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
