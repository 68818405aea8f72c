"""Pass 7: cut the graph at the global average pool so its output is the pre-GAP feature map.

The cut point is the first global pooling that every path to the output goes through (it
dominates the output). Without one, the graph is cut at the last 4-D feature map every path goes
through, and the report says so; if what lies after that point is more than a classifier on a flat
vector (a transformer body, say), the model has no convolutional feature map to score: blocking.
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

from ..graph import ancestors, data_inputs, input_dependent, is_conv, is_linear, node_module, numel, shape
from ._util import PassContext, describe, dropped_names, finish, record
from .report import Change

NAME = "head"

_POOL_NAMES = ("pool", "mean", "avg")


def _output_node(gm: fx.GraphModule) -> fx.Node:
    return next(n for n in reversed(gm.graph.nodes) if n.op == "output")


def _is_global_avg_pool(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node]) -> bool:
    ins = data_inputs(n, dep)
    so = shape(n)
    if len(ins) != 1 or so is None:
        return False
    si = shape(ins[0])
    if si is None or len(si) != 4:
        return False
    nn_, c, h, w = si
    m = node_module(gm, n)
    name = (type(m).__name__ if n.op == "call_module" else str(getattr(n.target, "__name__", n.target))).lower()
    if not any(k in name for k in _POOL_NAMES):
        return False
    if "max" in name and "avg" not in name:
        return False
    spatial = h * w
    # NCHW -> (N, C, 1, 1) / (N, C); NHWC -> (N, 1, 1, C) / (N, C)
    size = numel(so)
    return (spatial > 1 and size == nn_ * c) or (c * h > 1 and size == nn_ * w)  # NCHW or NHWC


def _dominators_of_output(gm: fx.GraphModule, dep: set[fx.Node]) -> list[fx.Node]:
    """Input-dependent nodes every input-to-output path goes through, in graph order."""
    import networkx as nx

    out = _output_node(gm)
    g = nx.DiGraph()
    root = "__root__"
    g.add_node(root)
    for n in gm.graph.nodes:
        if n not in dep and n is not out:
            continue
        if n.op == "placeholder":
            g.add_edge(root, n)
        for a in n.all_input_nodes:
            if a in dep:
                g.add_edge(a, n)
    if out not in g:
        return []
    idom = nx.immediate_dominators(g, root)
    chain = []
    cur = out
    while cur in idom and idom[cur] != cur:
        cur = idom[cur]
        if cur == root:
            break
        chain.append(cur)
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    return sorted(chain, key=lambda n: order[n])


def _several_outputs(outputs: object) -> str:
    """'a dict (keys 'a', 'b')' or 'a list of 3 outputs' when forward returns more than one thing, else ''."""
    if isinstance(outputs, dict) and len(outputs) > 1:
        return "a dict (keys " + ", ".join(repr(k) for k in outputs) + ")"
    if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
        return f"a {'tuple' if isinstance(outputs, tuple) else 'list'} of {len(outputs)} outputs"
    return ""


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)
    out = _output_node(gm)
    doms = _dominators_of_output(gm, dep)
    outputs = out.args[0]
    several = _several_outputs(outputs)
    if several:  # a dict or list of feature maps: say so, not "no convolution left"
        ctx.block(f"several outputs: the model returns {several}; zenfx scores one feature map, so pick one "
                  "with zenfx.pick_output(model, KEY) in a file spec (README, 'Several inputs or outputs')")
        return gm, changes
    out_node = outputs if isinstance(outputs, fx.Node) else None
    has_pool = any(_is_global_avg_pool(gm, d, dep) for d in doms)
    if out_node is not None and len(shape(out_node) or ()) == 4 and not has_pool:
        ctx.note("no head: the output is already a feature map; nothing cut")
        return gm, changes
    cut: fx.Node | None = None
    pool = next((d for d in doms if _is_global_avg_pool(gm, d, dep)), None)
    if pool is not None:
        cut = data_inputs(pool, dep)[0]
        detail = f"cut at the global average pool {describe(gm, pool)}: output is its input, shape {shape(cut)}"
    else:
        maps = [d for d in doms if len(shape(d) or ()) == 4]
        if not maps:
            ctx.block("no feature map: no global average pool and no 4-D feature map that every path to the output "
                      "goes through, so there is no pre-GAP map to score")
            return gm, changes
        cut = maps[-1]
        if isinstance(node_module(gm, cut), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)):
            cut = data_inputs(cut, dep)[0]
        detail = (f"no global average pool: cut at the last feature map {describe(gm, cut)}, shape {shape(cut)}, "
                  f"before the classifier")
    tail = ancestors(out) - ancestors(cut)
    body_like = [n for n in tail if (is_conv(gm, n) or is_linear(gm, n)) and any(
        len(shape(i) or ()) >= 3 for i in data_inputs(n, dep))]
    if pool is None and body_like:
        convs = sum(1 for n in ancestors(cut) if is_conv(gm, n))
        ctx.block(f"no convolution left after stripping: after {describe(gm, cut)} ({convs} conv before it) the "
                  f"network runs {len(body_like)} conv/linear layers on token sequences or feature maps with no "
                  f"pooling point to cut at (transformer-style body, e.g. plain ViT)")
        return gm, changes
    if pool is None:
        ctx.note("no global average pool: the graph was cut at the last feature map before the classifier")
    out.args = (cut,)
    record(changes, NAME, cut, "head_cut", kept=cut.name, dropped=dropped_names(gm, tail), detail=detail)
    return finish(gm), changes
