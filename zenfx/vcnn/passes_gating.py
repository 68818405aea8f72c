"""Pass 3: gating multiplies become their main operand.

``x * g`` is a gate when ``g`` is computed from a *global pooling* of what feeds ``x``: every path
from outside ``g``'s own branch into ``g`` passes through a node that pools away all spatial
positions (SE, EffectiveSE, ECA, GE, CBAM channel gate, ...) or all channels (CBAM spatial gate).
Broadcast adds of such a pooled context (GCNet-style) are treated the same way. The gate branch
and its modules are removed. Self-gated activations (``x * sigmoid(x)``) have no pooling and are
left to the activation pass.
"""

from __future__ import annotations

import math

import torch.fx as fx

from ..graph import is_tensor_add, is_tensor_mul, shape
from ._util import (PassContext, data_inputs, describe, dropped_names, erase_dead, finish, input_dependent,
                    record, replace_with, ancestors)
from .report import Change

NAME = "gating"


def _numel(s: tuple[int, ...]) -> int:
    return math.prod(s)


def is_global_pool_like(n: fx.Node, dep: set[fx.Node]) -> bool:
    """``n`` reduces a feature map over all spatial positions (to <= N*C values) or over all channels."""
    ins = data_inputs(n, dep)
    so = shape(n)
    if len(ins) != 1 or so is None:
        return False
    si = shape(ins[0])
    if si is None or len(si) < 3 or _numel(so) >= _numel(si):
        return False
    if len(si) == 4:
        n_, c, h, w = si
        if h * w > 1 and _numel(so) <= max(n_ * c, n_ * w):  # NCHW or NHWC spatial pool
            return True
        if c > 1 and len(so) == 4 and so[1] == 1 and so[2:] == si[2:]:  # channel pool (CBAM spatial gate)
            return True
        return False
    if len(si) == 3:  # (N, C, L) sequences: pooled over L
        return si[2] > 1 and _numel(so) <= si[0] * si[1]
    return False


def gate_region(main: fx.Node, gate: fx.Node, dep: set[fx.Node]) -> set[fx.Node] | None:
    """The gate's own branch if ``gate`` is computed from a global pooling, else None."""
    anc_main = ancestors(main)
    if gate in anc_main:
        return None
    region = ancestors(gate) - anc_main
    stack, seen, pooled = [gate], set(), False
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if is_global_pool_like(cur, dep):
            pooled = True
            continue
        for i in data_inputs(cur, dep):
            if i in region:
                stack.append(i)
            else:
                return None  # an un-pooled path from the feature map into the gate
    return region if pooled else None


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)  # only shrinks while this pass runs: computed once
    for n in list(gm.graph.nodes):
        if getattr(n, "_erased", False) or not n.users:
            continue
        mul = is_tensor_mul(n)
        if not (mul or is_tensor_add(n)):
            continue
        ins = data_inputs(n, dep)
        if len(ins) != 2:
            continue
        a, b = ins
        sa, sb = shape(a), shape(b)
        if sa is None or sb is None:
            continue
        if not mul and sa == sb:
            continue  # a same-shape add is a residual, not a context add
        for main, gate in ((a, b), (b, a)):
            if _numel(shape(gate)) > _numel(shape(main)) or len(shape(main)) < 3:
                continue
            region = gate_region(main, gate, dep)
            if region is None:
                continue
            replace_with(n, main)
            what = "gating multiply" if mul else "pooled-context add"
            record(changes, NAME, n, "gate", kept=main.name, dropped=dropped_names(gm, region),
                   detail=f"{what}: gate {describe(gm, gate)} is computed from a global pooling of the feature map")
            erase_dead(gm, region | {n})
            break
    return finish(gm), changes
