"""Pass 5: every non-ReLU activation becomes ReLU.

Three forms are handled: activation modules (torch.nn and timm's, including the ``.act`` inside
timm's BatchNormAct / GroupNormAct, which fx reaches as a call_module), functional calls and tensor
methods (``F.silu``, ``torch.sigmoid``, ``x.tanh()``, ...), and self-gated products traced from
timm's functional activations (``x * x.sigmoid()``, ``x * F.relu6(x + 3)``, ``x * tanh(softplus(x))``),
which collapse to ``relu(x)``. What counts as a non-ReLU activation is ``zenfx.graph``'s
``is_non_relu_activation`` (the checks after the passes use the same predicate).
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
from torch import nn

from ..graph import (
    ancestors,
    data_inputs,
    input_dependent,
    is_activation_module,
    is_non_relu_activation,
    is_relu,
    is_tensor_mul,
    node_module,
    shape,
)
from ._util import PassContext, describe, erase_dead, finish, record, replace_with, set_module
from .report import Change

NAME = "activation"

# Element-wise ops that may sit between x and f(x) in a self-gated activation.
_SCALAR_OPS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul,
               torch.add, torch.mul, torch.div, torch.clamp, torch.clip}
_SCALAR_METHODS = {"add", "add_", "mul", "mul_", "div", "div_", "clamp", "clamp_", "clamp_min", "clamp_max"}


def _act_name(gm: fx.GraphModule, n: fx.Node) -> str:
    if n.op == "call_module":
        return type(node_module(gm, n)).__name__
    return getattr(n.target, "__name__", str(n.target))


def _self_gate(gm: fx.GraphModule, x: fx.Node, g: fx.Node, dep: set[fx.Node]) -> bool:
    """``g`` is an element-wise function of ``x`` alone, through at least one non-linearity."""
    stack, seen, nonlinear = [g], set(), False
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur is x:
            continue
        if shape(cur) != shape(x):
            return False
        if is_non_relu_activation(gm, cur) or is_relu(gm, cur):
            nonlinear = True
        elif not ((cur.op == "call_function" and cur.target in _SCALAR_OPS)
                  or (cur.op == "call_method" and cur.target in _SCALAR_METHODS)):
            return False
        ins = data_inputs(cur, dep)
        if len(ins) != 1:
            return False
        stack.extend(ins)
    return nonlinear and x in seen


def _is_pow(n: fx.Node) -> bool:
    if len(n.args) != 2 or not isinstance(n.args[1], (int, float)) or n.args[1] == 1:
        return False
    return (n.op == "call_function" and n.target in (operator.pow, torch.pow, torch.square)) or (
        n.op == "call_method" and n.target in ("pow", "pow_"))


def _inside_leaf(gm: fx.GraphModule, n: fx.Node, changes: list[Change]) -> None:
    """Activations inside a module fx kept whole (timm's BatchNormAct2d / ConvMlp as leaves) -> ReLU."""
    m = node_module(gm, n)
    if m is None:
        return
    for name, child in list(m.named_modules()):
        if name and is_activation_module(child):
            set_module(gm, f"{n.target}.{name}", nn.ReLU())
            record(changes, NAME, n, "activation", kept="ReLU", dropped=[type(child).__name__],
                   detail=f"{n.target}.{name}: {type(child).__name__} inside {type(m).__name__} -> ReLU")


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    graph = gm.graph
    dep = input_dependent(gm)
    # self-gated products first: x * f(x) -> relu(x)
    for n in list(graph.nodes):
        if getattr(n, "_erased", False) or not n.users or not is_tensor_mul(n):
            continue
        _collapse_self_gate(gm, n, dep, changes)
    for n in list(graph.nodes):
        if not getattr(n, "_erased", False):
            _to_relu(gm, n, dep, changes)
    return finish(gm), changes


def _collapse_self_gate(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node], changes: list[Change]) -> None:
    """``x * f(x)`` (swish, hard-swish, mish written out) -> ``relu(x)``, the gate branch erased."""
    graph = gm.graph
    ins = data_inputs(n, dep)
    if len(ins) != 2 or shape(ins[0]) != shape(ins[1]):
        return
    for x, g in ((ins[0], ins[1]), (ins[1], ins[0])):
        if _self_gate(gm, x, g, dep):
            with graph.inserting_before(n):
                r = graph.call_function(torch.relu, (x,))
            r.meta = dict(n.meta)
            replace_with(n, r)
            record(changes, NAME, n, "activation", kept="ReLU", dropped=[describe(gm, g)],
                   detail="self-gated activation x * f(x) (swish / hard-swish / mish form) -> ReLU")
            erase_dead(gm, ancestors(g) - ancestors(x) | {n})
            return


def _to_relu(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node], changes: list[Change]) -> None:
    """One node: squared ReLU -> ReLU; an activation module, function or method -> ReLU; a leaf
    module kept whole gets the activations inside it replaced."""
    if _is_pow(n) and isinstance(n.args[0], fx.Node) and is_relu(gm, n.args[0]) and n.args[0] in dep:
        replace_with(n, n.args[0])  # squared ReLU (timm's StarReLU: s * relu(x) ** 2 + b) -> ReLU
        record(changes, NAME, n, "activation", kept="ReLU", dropped=[f"relu(x) ** {n.args[1]}"],
               detail="squared ReLU (StarReLU / SquaredReLU) -> ReLU")
        return
    if n.op == "call_module" and not is_non_relu_activation(gm, n):
        _inside_leaf(gm, n, changes)
        return
    if not is_non_relu_activation(gm, n):
        return
    name = _act_name(gm, n)
    if n.op == "call_module":
        set_module(gm, str(n.target), nn.ReLU())
        record(changes, NAME, n, "activation", kept="ReLU", dropped=[name], detail=f"{n.target}: {name} -> ReLU")
        return
    src = n.args[0] if n.args else n.kwargs.get("input")
    if not isinstance(src, fx.Node):
        return
    with gm.graph.inserting_before(n):
        r = gm.graph.call_function(torch.relu, (src,))
    r.meta = dict(n.meta)
    replace_with(n, r)
    record(changes, NAME, n, "activation", kept="ReLU", dropped=[name], detail=f"{name} -> torch.relu")
