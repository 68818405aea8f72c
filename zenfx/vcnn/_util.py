"""Graph helpers the VCNN passes share: dependency on the input, ancestors, branch weights, DCE."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..graph import is_conv, is_linear, node_module, shape
from .report import Change


@dataclass
class PassContext:
    """Options and the running record every pass reads and appends to."""

    keep_norms: bool = False
    blocking: list[str] = field(default_factory=list)        # reasons the model is not convertible
    approximations: list[str] = field(default_factory=list)  # why the verdict is "with approximations"
    notes: list[str] = field(default_factory=list)           # facts worth saying that change nothing
    deferred: set[str] = field(default_factory=set)          # node names a later pass must handle
    ambiguous: dict[str, str] = field(default_factory=dict)  # residual ties: node name -> description

    def block(self, reason: str) -> None:
        if reason not in self.blocking:
            self.blocking.append(reason)

    def approx(self, reason: str) -> None:
        if reason not in self.approximations:
            self.approximations.append(reason)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# Methods whose second operand contributes only its shape / dtype.
SHAPE_ONLY_METHODS = {"expand_as", "view_as", "reshape_as", "type_as", "to"}


def is_tensor_node(n: Any) -> bool:
    """A node whose value is one tensor (shape-annotated), not an int, size or tuple."""
    return isinstance(n, fx.Node) and shape(n) is not None


def is_tensorish(n: Any) -> bool:
    """A node whose value is a tensor or a tuple of tensors (not a size, an int or a shape)."""
    if not isinstance(n, fx.Node):
        return False
    s = n.meta.get("shape")
    return isinstance(s, tuple) and (all(isinstance(d, int) for d in s) or all(isinstance(d, tuple) for d in s))


SIZE_METHODS = {"size", "dim", "numel", "ndimension", "nelement", "get_device", "stride", "is_contiguous"}


def _size_like(n: fx.Node) -> bool:
    """Attribute / size queries: their value is metadata of a tensor, never its data."""
    if n.op == "call_function" and n.target is getattr:
        return True
    return n.op == "call_method" and n.target in SIZE_METHODS


def input_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes whose *values* depend on a graph input (not only on parameters, constants or its size).

    ``x.shape[0]`` and friends do not count: a class token expanded to the batch size is a constant.
    """
    dep: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            dep.add(n)
        elif n.op in ("call_function", "call_method", "call_module") and not _size_like(n):
            args = list(n.all_input_nodes)
            if n.op == "call_method" and n.target in SHAPE_ONLY_METHODS and args:
                args = args[:1]
            if any(a in dep for a in args):
                dep.add(n)
    return dep


def data_inputs(n: fx.Node, dep: set[fx.Node]) -> list[fx.Node]:
    """Input-dependent tensor inputs of ``n`` whose *values* flow into it (shape-only args skipped)."""
    args = list(n.all_input_nodes)
    if n.op == "call_method" and n.target in SHAPE_ONLY_METHODS and args:
        args = args[:1]
    out: list[fx.Node] = []
    for a in args:
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
    if n.op == "call_module":
        m = node_module(gm, n)
        return sum(p.numel() for p in m.parameters()) if m is not None else 0
    if n.op == "get_attr":
        try:
            t = _get_attr(gm, str(n.target))
        except AttributeError:
            return 0
        return t.numel() if isinstance(t, nn.Parameter) else 0
    return 0


def _get_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def branch_weight(gm: fx.GraphModule, nodes: Iterable[fx.Node]) -> tuple[int, int]:
    """(conv + linear layers, parameters) on a branch: how a main branch is told from a shortcut."""
    layers = params = 0
    for n in nodes:
        if is_conv(gm, n) or is_linear(gm, n):
            layers += 1
        params += node_params(gm, n)
    return layers, params


def module_path(n: fx.Node) -> str:
    return str(n.target) if n.op == "call_module" else n.name


def describe(gm: fx.GraphModule, n: fx.Node) -> str:
    """A short human name for a node: 'layer1.0.downsample.0 (Conv2d)' or 'mul_3 (mul)'."""
    if n.op == "call_module":
        m = node_module(gm, n)
        return f"{n.target} ({type(m).__name__})" if m is not None else str(n.target)
    if n.op == "call_function":
        return f"{n.name} ({getattr(n.target, '__name__', str(n.target))})"
    if n.op == "call_method":
        return f"{n.name} (.{n.target})"
    return n.name


def dropped_names(gm: fx.GraphModule, nodes: Iterable[fx.Node], limit: int = 12) -> list[str]:
    """Names of the interesting nodes of a dropped region: modules and compute ops, in graph order."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    keep = [n for n in nodes if n.op in ("call_module", "call_function", "call_method")
            and not (n.op == "call_function" and n.target in (getattr, operator.getitem, torch._assert))]
    keep.sort(key=lambda n: order.get(n, 0))
    names = [module_path(n) for n in keep]
    if len(names) > limit:
        names = names[:limit] + [f"... (+{len(names) - limit})"]
    return names


def eliminate_dead(gm: fx.GraphModule) -> int:
    """Remove every node the output does not depend on (asserts and shape checks included)."""
    graph = gm.graph
    out = next(n for n in reversed(graph.nodes) if n.op == "output")
    live = ancestors(out)
    removed = 0
    for n in reversed(list(graph.nodes)):
        if n in live or n.op == "placeholder":
            continue
        if n.users:
            # users are dead too and already erased in reverse order; anything else stays
            if any(u in live for u in n.users):
                continue
        graph.erase_node(n)
        removed += 1
    return removed


def erase_dead(gm: fx.GraphModule, candidates: Iterable[fx.Node]) -> None:
    """Erase those of ``candidates`` left without users (cheap, local; ``finish`` does the full sweep)."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    for n in sorted((c for c in candidates if c in order), key=order.__getitem__, reverse=True):
        if not n.users and n.op not in ("placeholder", "output"):
            gm.graph.erase_node(n)


def finish(gm: fx.GraphModule) -> fx.GraphModule:
    """After surgery: drop dead nodes and modules, lint. ``to_vcnn`` regenerates the code once at the end."""
    eliminate_dead(gm)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    return gm


def replace_with(node: fx.Node, keep: fx.Node) -> None:
    """Every user of ``node`` reads ``keep`` instead; ``node`` becomes dead."""
    node.replace_all_uses_with(keep)


def set_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent_path, _, name = target.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, name, module)


def unique_module_name(gm: fx.GraphModule, base: str) -> str:
    base = base.replace(".", "_") if "." not in base else base
    name, i = base, 0
    existing = {n for n, _ in gm.named_modules()}
    while name in existing or _has_attr_path(gm, name):
        i += 1
        name = f"{base}_{i}"
    return name


def _has_attr_path(gm: fx.GraphModule, path: str) -> bool:
    try:
        _get_attr(gm, path)
        return True
    except AttributeError:
        return False


def module_device(gm: fx.GraphModule) -> torch.device:
    for t in list(gm.parameters()) + list(gm.buffers()):
        return t.device
    return torch.device("cpu")


def record(changes: list[Change], pass_name: str, node: fx.Node | str, kind: str, kept: Optional[str] = None,
           dropped: Optional[list[str]] = None, detail: str = "", approximate: bool = False) -> Change:
    ch = Change(pass_name, node if isinstance(node, str) else node.name, kind, kept, list(dropped or []), detail, approximate)
    changes.append(ch)
    return ch


FUNCTIONAL_SOFTMAX = {F.softmax, torch.softmax, F.log_softmax}
