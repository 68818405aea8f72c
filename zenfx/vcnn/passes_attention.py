"""Pass 4: softmax-attention blocks are stripped where a same-shape path around them exists.

An attention block is recognised by its core (``zenfx.graph.is_attention_node``):
``nn.MultiheadAttention``, ``F.scaled_dot_product_attention`` or a softmax (the explicit
``q @ k^T -> softmax -> @ v`` form). The residual pass leaves adds whose main branch holds
attention for this pass, which keeps the path *around* the block (the shortcut) and drops the
attention branch. Attention with no such path is a blocking reason. Adds the residual pass
deferred whose softmax turned out to be a gate go back to ``passes_residual.resolve``.
"""

from __future__ import annotations

import torch.fx as fx

from ..graph import data_inputs, exclusive_branches, input_dependent, is_attention_node, is_tensor_add, shape
from ._util import PassContext, describe, dropped_names, erase_dead, finish, record, replace_with
from .passes_residual import resolve
from .report import Change

NAME = "attention"


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)
    stripped = 0
    for n in list(gm.graph.nodes):
        if getattr(n, "_erased", False) or not n.users or not is_tensor_add(n):
            continue
        ins = data_inputs(n, dep)
        if len(ins) != 2 or shape(ins[0]) != shape(ins[1]):
            continue
        a, b = ins
        ex_a, ex_b = exclusive_branches(a, b)
        att_a = [x for x in ex_a if is_attention_node(gm, x)]
        att_b = [x for x in ex_b if is_attention_node(gm, x)]
        if not att_a and not att_b:
            if n.name in ctx.deferred:  # its softmax was a gate (SK, ResNeSt), removed by the gating pass
                resolve(gm, n, dep, ctx, changes, pass_name=NAME, defer_attention=False)
            continue
        if att_a and att_b:
            continue  # attention on both sides: nothing to keep around it
        keep, drop, region, att = (b, a, ex_a, att_a) if att_a else (a, b, ex_b, att_b)
        replace_with(n, keep)
        ctx.deferred.discard(n.name)
        stripped += 1
        record(changes, NAME, n, "attention", kept=keep.name, dropped=dropped_names(gm, region),
               detail=f"attention branch ({', '.join(describe(gm, x) for x in att[:2])}) stripped; "
                      f"the same-shape path around it kept", approximate=True)
        erase_dead(gm, region | {n})
    gm = finish(gm)
    left = [x for x in gm.graph.nodes if is_attention_node(gm, x)]
    if stripped:
        ctx.approx(f"attention stripped: {stripped} attention block(s) removed, the path around each kept")
    if left:
        ctx.block(f"attention without a path around it: {len(left)} softmax-attention op(s) have no same-shape "
                  f"path around them to keep (first: {describe(gm, left[0])})")
    return gm, changes
