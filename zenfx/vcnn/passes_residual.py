"""Pass 2: residual merges keep the main branch and drop the shortcut.

For an add of two same-shape, input-dependent tensors, the two branches are the nodes that feed
only one operand (back to where they fork from their common ancestors). The main branch is the one
carrying more parametric layers (conv + linear count, then parameter count); the other branch,
identity or projection (1x1 conv + BN, avg-pool + conv), is dropped with its modules. Argument order
plays no part. A tie is an ambiguous residual: reported as a blocking reason, never guessed.
Adds whose heavier branch holds attention are left to the attention pass, which keeps the path
around the attention block instead.
"""

from __future__ import annotations

import torch.fx as fx

from ..graph import is_conv, is_tensor_add, shape
from ._util import (PassContext, branch_weight, data_inputs, dropped_names, erase_dead, exclusive_branches,
                    finish, input_dependent, record, replace_with)
from .passes_attention import is_attention_node
from .report import Change

NAME = "residual"


def _shortcut_kind(gm: fx.GraphModule, region: set[fx.Node], weight: tuple[int, int]) -> str:
    if weight == (0, 0):
        return "identity shortcut"
    convs = sum(1 for n in region if is_conv(gm, n))
    pooled = any("pool" in str(n.target).lower() for n in region if n.op != "get_attr")
    if convs:
        return ("avg-pool + conv projection" if pooled else f"projection shortcut ({convs} conv)")
    return f"shortcut with {weight[1]} parameters"


def resolve(gm: fx.GraphModule, n: fx.Node, dep: set, ctx: PassContext, changes: list[Change],
            pass_name: str = NAME, defer_attention: bool = True) -> bool:
    """Decide one same-shape add: keep the main branch (True), defer it, or record a tie (False)."""
    ins = data_inputs(n, dep)
    if len(ins) != 2:
        return False  # x + x, or an add of a constant / bias: not a merge of two branches
    a, b = ins
    if shape(a) != shape(b) or shape(a) is None:
        return False  # broadcast add: the gating pass handles pooled-context adds, the checks the rest
    ex_a, ex_b = exclusive_branches(a, b)
    if defer_attention and (any(is_attention_node(gm, x) for x in ex_a) or any(is_attention_node(gm, x) for x in ex_b)):
        ctx.deferred.add(n.name)
        return False
    w_a, w_b = branch_weight(gm, ex_a), branch_weight(gm, ex_b)
    if w_a == w_b:
        # judged after the attention pass: a tie inside an attention block goes away with the block
        ctx.ambiguous[n.name] = f"{n.name} (both branches {w_a[0]} conv/linear, {w_a[1]} params)"
        return False
    keep, drop, region, w_keep, w_drop = (a, b, ex_b, w_a, w_b) if w_a > w_b else (b, a, ex_a, w_b, w_a)
    kind = _shortcut_kind(gm, region, w_drop)
    replace_with(n, keep)
    record(changes, pass_name, n, "residual", kept=keep.name, dropped=dropped_names(gm, region),
           detail=f"kept main branch ({w_keep[0]} conv/linear, {w_keep[1]:,} params); dropped {kind}")
    ctx.deferred.discard(n.name)
    erase_dead(gm, region | {n})
    return True


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)  # only shrinks while this pass runs: computed once
    for n in list(gm.graph.nodes):
        if getattr(n, "_erased", False) or not n.users or not is_tensor_add(n):
            continue
        resolve(gm, n, dep, ctx, changes)
    return finish(gm), changes
