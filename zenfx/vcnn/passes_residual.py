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

from ..graph import input_dependent, is_conv, is_tensor_add, residual_branches
from ._util import PassContext, dropped_names, erase_dead, finish, record, replace_with
from .report import Change

NAME = "residual"


def _shortcut_kind(gm: fx.GraphModule, region: frozenset[fx.Node], weight: tuple[int, int]) -> str:
    if weight == (0, 0):
        return "identity shortcut"
    convs = sum(1 for n in region if is_conv(gm, n))
    pooled = any("pool" in str(n.target).lower() for n in region if n.op != "get_attr")
    if convs:
        return ("avg-pool + conv projection" if pooled else f"projection shortcut ({convs} conv)")
    return f"shortcut with {weight[1]} parameters"


def resolve(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node], ctx: PassContext, changes: list[Change],
            pass_name: str = NAME, defer_attention: bool = True) -> bool:
    """Decide one same-shape add: keep the main branch (True), defer it, or record a tie (False).

    The attention pass calls this too (``defer_attention=False``) for adds it was handed whose
    softmax turned out to be a gate."""
    split = residual_branches(gm, n, dep)
    if split is None:
        return False  # x + x, an add of a constant / bias, or a broadcast add (gating pass / checks)
    if defer_attention and split.attention:
        ctx.deferred.add(n.name)
        return False
    if split.tie:
        # judged after the attention pass: a tie inside an attention block goes away with the block
        w = split.main_weight
        ctx.ambiguous[n.name] = f"{n.name} (both branches {w[0]} conv/linear, {w[1]} params)"
        return False
    kind = _shortcut_kind(gm, split.shortcut_region, split.shortcut_weight)
    replace_with(n, split.main)
    record(changes, pass_name, n, "residual", kept=split.main.name, dropped=dropped_names(gm, split.shortcut_region),
           detail=f"kept main branch ({split.main_weight[0]} conv/linear, {split.main_weight[1]:,} params); "
                  f"dropped {kind}")
    ctx.deferred.discard(n.name)
    erase_dead(gm, split.shortcut_region | {n})
    return True


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)  # only shrinks while this pass runs: computed once
    for n in list(gm.graph.nodes):
        if getattr(n, "_erased", False) or not n.users or not is_tensor_add(n):
            continue
        resolve(gm, n, dep, ctx, changes)
    return finish(gm), changes
