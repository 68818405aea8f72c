"""Where AZ-NAS reads its block features: feature points of any traced ``nn.Module``.

AZ-NAS (Lee & Ham, CVPR 2024) reads one feature map per block: on NAS-Bench-201 the stem output
and every cell output (``TinyNetwork.extract_cell_features``), on its MobileNetV2 space the output
of the ReLU after every residual block plus the stem's and the last 1x1 conv's ReLU
(``MasterNet.extract_layer_features``). zenfx finds the same points in the fx graph of any model.

The rule, on the *data graph* (nodes whose value depends on the input and that feed the output):

1. **Cut points**: nodes every input-to-output path passes through (no edge jumps over them in
   topological order). Block boundaries are cut points; nodes inside a residual block or a cell
   are not, because the shortcut bypasses them.
2. **Blocks** (from the module tree): a module is single-entry/single-exit (SESE) when its span in
   the graph has one input and one output that is a 4-D cut point. A *merge block* is a SESE
   module whose span merges two data paths (a residual add, a cell's node sum, a concat, a gate)
   and that holds no smaller SESE merge block. Every SESE child of a container that directly
   holds a merge block is a block too (so a NAS-Bench-201 cell that degenerates into a chain, or
   into a skip, is still one block, as in the reference), except a lone leaf layer (a Conv, a
   BN) and a module that only applies an activation (the reference's ``RELU`` after a
   ``ResBlock``): those belong to the stretch around them.
   Without any module block (a forward that writes residuals inline) every 4-D cut point that
   merges two data paths is a block.
3. **Features**, walking the cut points in order:

   - a block's output, extended through the activations that directly follow it
     (``add -> relu``: the ReLU output, as in the reference's MobileNetV2 space);
   - outside blocks, every convolution opens a *unit* that extends through what follows it
     (BN, activation, pooling) up to the next convolution, block, global pooling or non-4-D
     node; the unit's last node is a feature (the stem before the first block, a plain net's
     conv-BN-ReLU layers, a 1x1 head conv before the global pool);
   - anything else outside blocks (a final BN-ReLU after the last cell, the pooling and the
     classifier) is no feature.

A model with no block at all (a plain conv chain) therefore gets one feature per convolution
unit; a model with one feature point gets expressivity only (progressivity and trainability are
undefined: -inf, the reference's value for NaN); a model without a convolution has none and is
refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..graph import (
    ancestors,
    input_dependent,
    is_conv,
    is_global_pool_like,
    is_non_relu_activation,
    is_relu,
)


@dataclass
class FeaturePoints:
    """The feature nodes of a graph, in execution order, and the blocks they came from."""

    nodes: list[fx.Node]
    blocks: list[str] = field(default_factory=list)  # module paths of the blocks read ("" for a graph merge)
    rule: str = "modules"  # "modules" (blocks from the module tree), "merges" (graph fallback) or "chain"

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]


def _stack_paths(node: fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for key, val in stack.items():
        out.append(val[0] if isinstance(val, tuple) and val and isinstance(val[0], str) else str(key))
    if node.op == "call_module":
        out.append(str(node.target))
    return list(dict.fromkeys(p for p in out if p))


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


class _Graph:
    """The data graph of ``gm``: order, data edges, cut points."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.dep = input_dependent(gm)
        out = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
        anc = ancestors(out)
        self.order = [n for n in gm.graph.nodes if n in self.dep and n in anc and n.op != "output"]
        self.pos = {n: i for i, n in enumerate(self.order)}
        self.end = len(self.order)
        self.users: dict[fx.Node, list[fx.Node]] = {}
        self.inputs: dict[fx.Node, list[fx.Node]] = {}
        for n in self.order:
            ins = [a for a in dict.fromkeys(n.all_input_nodes) if a in self.pos]
            self.inputs[n] = ins
            for a in ins:
                self.users.setdefault(a, []).append(n)
        for a in out.all_input_nodes:
            if a in self.pos:
                self.users.setdefault(a, []).append(out)
        reach = -1
        self.cuts: set[fx.Node] = set()
        for n in self.order:
            i = self.pos[n]
            if reach <= i and n.op != "placeholder":
                self.cuts.add(n)
            for u in self.users.get(n, []):
                reach = max(reach, self.pos.get(u, self.end))

    def merges(self, n: fx.Node) -> bool:
        return len(self.inputs.get(n, [])) >= 2


def _is_activation(gm: fx.GraphModule, n: fx.Node) -> bool:
    return is_relu(gm, n) or is_non_relu_activation(gm, n)


@dataclass
class _Span:
    path: str
    nodes: list[fx.Node]
    inp: fx.Node | None = None
    out: fx.Node | None = None
    sese: bool = False
    merge: bool = False


def _spans(g: _Graph, shapes: dict[fx.Node, Any]) -> dict[str, _Span]:
    spans: dict[str, _Span] = {}
    for n in g.order:
        for p in _stack_paths(n):
            spans.setdefault(p, _Span(p, [])).nodes.append(n)
    for sp in spans.values():
        members = set(sp.nodes)
        ins = {a for n in sp.nodes for a in g.inputs[n] if a not in members}
        outs = [n for n in sp.nodes if any(u not in members for u in g.users.get(n, []))]
        if len(ins) == 1 and len(outs) == 1 and outs[0] in g.cuts and _is_map(shapes.get(outs[0])):
            sp.inp, sp.out, sp.sese = next(iter(ins)), outs[0], True
        sp.merge = any(g.merges(n) for n in sp.nodes)
    return spans


def _is_map(shape: Any) -> bool:
    return isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(d, int) for d in shape)


def _blocks(g: _Graph, spans: dict[str, _Span]) -> list[_Span]:
    merge_blocks = [sp for sp in spans.values() if sp.sese and sp.merge]
    inner = [sp for sp in merge_blocks
             if not any(q.path.startswith(sp.path + ".") for q in merge_blocks if q is not sp)]
    containers = {_parent(sp.path) for sp in inner}
    inner_paths = {sp.path for sp in inner}
    chosen: dict[str, _Span] = {sp.path: sp for sp in inner}
    for sp in spans.values():
        if not sp.sese or sp.path in chosen or _parent(sp.path) not in containers:
            continue
        if any(p.startswith(sp.path + ".") for p in inner_paths):
            continue  # a container of blocks, not a block
        leaf = len(sp.nodes) == 1 and sp.nodes[0].op == "call_module" and str(sp.nodes[0].target) == sp.path
        if leaf or all(_is_activation(g.gm, n) for n in sp.nodes):
            continue
        chosen[sp.path] = sp
    # a block nested in another chosen block (a sibling that contains a smaller one) is dropped
    out = [sp for sp in chosen.values()
           if not any(sp.path.startswith(q + ".") for q in chosen if q != sp.path)]
    return sorted(out, key=lambda sp: g.pos[sp.out])  # type: ignore[index]


def find_feature_points(gm: fx.GraphModule, shapes: dict[fx.Node, Any]) -> FeaturePoints:
    """The feature nodes of ``gm`` (see the module docstring); ``shapes`` maps nodes to output shapes
    (from a real forward or the trace's shape record)."""
    g = _Graph(gm)
    spans = _spans(g, shapes)
    blocks = _blocks(g, spans)
    rule = "modules"
    interior: set[fx.Node] = set()
    outputs: dict[fx.Node, str] = {}
    for sp in blocks:
        assert sp.out is not None
        outputs[sp.out] = sp.path
        interior.update(n for n in sp.nodes if n is not sp.out)
    if not blocks:
        merges = [n for n in g.order if n in g.cuts and g.merges(n) and _is_map(shapes.get(n))]
        outputs = {n: "" for n in merges}
        rule = "merges" if merges else "chain"
    walk = _FeatureWalk(gm, g, shapes, outputs)
    for n in g.order:
        if n in g.cuts and n not in interior:
            walk.visit(n)
    walk.emit()
    feats, origin = walk.feats, walk.origin
    return FeaturePoints(feats, [b for b in origin if b is not None], rule)


class _FeatureWalk:
    """The walk over the graph's cut points in order: a block's output (or the activation right after
    it) closes a block, a convolution opens a unit that ends at the next cut point; the head (a
    global map, a non-map) ends everything. ``feats`` collects the feature nodes in order."""

    def __init__(self, gm: fx.GraphModule, g: _Graph, shapes: dict[fx.Node, Any], outputs: dict[fx.Node, str]):
        self.gm, self.g, self.shapes, self.outputs = gm, g, shapes, outputs
        self.feats: list[fx.Node] = []
        self.origin: list[str | None] = []  # the block each feature closes (None: a convolution unit)
        self.pending: fx.Node | None = None
        self.block: str | None = None
        self.mode: str | None = None

    def emit(self) -> None:
        if self.pending is not None and self.pending not in self.feats:
            self.feats.append(self.pending)
            self.origin.append(self.block if self.mode == "block" else None)

    def visit(self, n: fx.Node) -> None:
        if n in self.outputs:
            self.emit()
            self.pending, self.mode, self.block = n, "block", self.outputs[n]
        elif (not _is_map(self.shapes.get(n)) or is_global_pool_like(n, self.g.dep)
              or _is_global_map(n, self.g, self.shapes)):
            self.emit()
            self.pending, self.mode = None, None
        elif is_conv(self.gm, n):
            self.emit()
            self.pending, self.mode = n, "unit"
        elif self.mode == "unit" or (self.mode == "block" and _is_activation(self.gm, n)):
            self.pending = n
        elif self.mode == "block":
            self.emit()
            self.pending, self.mode = None, None


def _is_global_map(n: fx.Node, g: _Graph, shapes: dict[fx.Node, Any]) -> bool:
    """A 1x1 map made from a larger one (adaptive pool to 1): the head, not a feature."""
    s = shapes.get(n)
    if not _is_map(s) or s[2] * s[3] != 1:
        return False
    return any(_is_map(shapes.get(a)) and shapes[a][2] * shapes[a][3] > 1 for a in g.inputs.get(n, []))


# --------------------------------------------------------------------------- running the graph


class _Recorder(fx.Interpreter):
    """Runs the graph for real, recording every node's output shape and keeping the values of the
    cut points (the only possible feature points)."""

    def __init__(self, gm: fx.GraphModule, keep: set[fx.Node]) -> None:
        super().__init__(gm)
        self.keep = keep
        self.shapes: dict[fx.Node, Any] = {}
        self.kept: dict[fx.Node, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(result.shape)
            if n in self.keep:
                self.kept[n] = result
        return result


def graph_of(net: nn.Module) -> fx.GraphModule:
    """``net`` as a zenfx-traced GraphModule (traced here when it is a plain module)."""
    if isinstance(net, fx.GraphModule):
        return net
    from ..tracing import symbolic_trace

    return symbolic_trace(net)


def run_features(gm: fx.GraphModule, x: torch.Tensor) -> tuple[list[torch.Tensor], FeaturePoints]:
    """One forward of ``gm`` on ``x``: the feature tensors (autograd graph kept) and their points."""
    g = _Graph(gm)
    rec = _Recorder(gm, set(g.cuts))
    rec.run(x)
    points = find_feature_points(gm, rec.shapes)
    return [rec.kept[n] for n in points.nodes], points


def describe(net: nn.Module, input_size: Sequence[int]) -> FeaturePoints:
    """The feature points of ``net`` at ``input_size`` (a batch-2 forward on zeros, no grad)."""
    gm = graph_of(net)
    dev = next((p.device for p in gm.parameters()), torch.device("cpu"))
    with torch.no_grad():
        was = gm.training
        gm.train()
        _, points = run_features(gm, torch.zeros((2, *input_size), device=dev))
        gm.train(was)
    return points


__all__ = ["FeaturePoints", "describe", "find_feature_points", "graph_of", "run_features"]
