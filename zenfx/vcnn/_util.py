"""What the VCNN passes share besides the graph predicates (those live in ``zenfx.graph``): the pass
context, naming nodes for the report, dead-code removal and module surgery."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn

from ..graph import ancestors, attr_at, node_module
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
        attr_at(gm, path)
        return True
    except AttributeError:
        return False


def record(changes: list[Change], pass_name: str, node: fx.Node | str, kind: str, kept: str | None = None,
           dropped: list[str] | None = None, detail: str = "", approximate: bool = False) -> Change:
    name = node if isinstance(node, str) else node.name
    ch = Change(pass_name, name, kind, kept, list(dropped or []), detail, approximate)
    changes.append(ch)
    return ch
