"""Pass 3: gating multiplies become their main operand.

``x * g`` is a gate when ``g`` is computed from a *global pooling* of what feeds ``x``: every path
from outside ``g``'s own branch into ``g`` passes through a node that pools away all spatial
positions (SE, EffectiveSE, ECA, GE, CBAM channel gate, ...) or all channels (CBAM spatial gate).
Broadcast adds of such a pooled context (GCNet-style) are treated the same way. The gate branch
and its modules are removed. Self-gated activations (``x * sigmoid(x)``) have no pooling and are
left to the activation pass.
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

from ..devices import module_device
from ..graph import (
    ancestors,
    branch_weight,
    data_inputs,
    input_dependent,
    is_global_pool_like,
    is_non_relu_activation,
    is_tensor_add,
    is_tensor_mul,
    numel,
    shape,
)
from ._util import (
    PassContext,
    describe,
    dropped_names,
    erase_dead,
    finish,
    record,
    replace_with,
    unique_module_name,
)
from .modules import ChannelsLastBatchNorm
from .report import Change

NAME = "gating"


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


_NORM_OPS = {"rsqrt", "sqrt", "norm", "var", "std", "truediv", "div", "reciprocal", "var_mean", "std_mean"}


def _op_name(n: fx.Node) -> str:
    return str(getattr(n.target, "__name__", n.target)).lower()


def normalisation_channels(gm: fx.GraphModule, region: set[fx.Node], dep: set[fx.Node]) -> tuple[str, int] | None:
    """('first' | 'last', channels) when the "gate" is a parameter-free normalisation (RMSNorm, GRN).

    A gate learns (conv / linear / parameters) and squashes (sigmoid, softmax, ...); a normalisation
    does neither and divides by a root of a pooled statistic. Those become BatchNorm over the same
    channels, like every other non-BN normalisation.
    """
    if branch_weight(gm, region) != (0, 0):
        return None
    if any(is_non_relu_activation(gm, r) for r in region) or any(_op_name(r) in ("softmax", "sigmoid") for r in region):
        return None
    if not any(_op_name(r) in _NORM_OPS for r in region):
        return None
    pools = [r for r in region if is_global_pool_like(r, dep)]
    if not pools:
        return None
    so, si = shape(pools[0]), shape(data_inputs(pools[0], dep)[0])
    if so is None or si is None or len(si) != 4 or len(so) != 4:
        return None
    if so[1] == 1 and si[1] > 1 and so[2:] == si[2:]:
        return "first", si[1]  # NCHW, pooled over channels (RMSNorm2d)
    if so[-1] == 1 and si[-1] > 1 and so[:3] == si[:3]:
        return "last", si[-1]  # NHWC, pooled over channels
    if so[1] == si[1] and so[2] == so[3] == 1:
        return "first", si[1]  # NCHW, pooled over space (GRN-style)
    if so[-1] == si[-1] and so[1] == so[2] == 1:
        return "last", si[-1]  # NHWC, pooled over space (ConvNeXt-V2 GRN)
    return None


def _to_batchnorm(gm: fx.GraphModule, n: fx.Node, main: fx.Node, layout: str, channels: int) -> str:
    bn = (nn.BatchNorm2d(channels) if layout == "first" else ChannelsLastBatchNorm(channels)).to(module_device(gm))
    target = unique_module_name(gm, f"vcnn_norm_{n.name}")
    gm.add_submodule(target, bn)
    with gm.graph.inserting_before(n):
        new = gm.graph.call_module(target, (main,))
    new.meta = dict(n.meta)
    replace_with(n, new)
    return target


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
            if _remove_gate(gm, ctx, n, main, gate, dep, mul, changes):
                break
    return finish(gm), changes


def _remove_gate(gm: fx.GraphModule, ctx: PassContext, n: fx.Node, main: fx.Node, gate: fx.Node,
                 dep: set[fx.Node], mul: bool, changes: list[Change]) -> bool:
    """``n`` = main (*|+) gate: when ``gate`` is computed from a global pooling, ``n`` becomes ``main``
    (or a BatchNorm of it, for a parameter-free normalisation) and the gate branch is erased."""
    if numel(shape(gate)) > numel(shape(main)) or len(shape(main)) < 3:
        return False
    region = gate_region(main, gate, dep)
    if region is None:
        return False
    norm = normalisation_channels(gm, region, dep) if mul else None
    if norm is not None:
        target = _to_batchnorm(gm, n, main, *norm)
        record(changes, NAME, n, "norm_replaced", kept=f"{target} (BatchNorm over {norm[1]} channels)",
               dropped=dropped_names(gm, region), approximate=True,
               detail="parameter-free normalisation written out (RMSNorm / GRN: x * f(pooled statistic)) "
                      "-> BatchNorm over the same channels")
        ctx.approx("norms replaced: LayerNorm / GroupNorm / other normalisation replaced by BatchNorm over "
                   "the same channels")
        erase_dead(gm, region | {n})
        return True
    replace_with(n, main)
    what = "gating multiply" if mul else "pooled-context add"
    record(changes, NAME, n, "gate", kept=main.name, dropped=dropped_names(gm, region),
           detail=f"{what}: gate {describe(gm, gate)} is computed from a global pooling of the feature map")
    erase_dead(gm, region | {n})
    return True
