"""``to_vcnn``: the ordered passes over a private copy of the graph, the checks, and the verdict."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch.fx as fx

from ..errors import ZenfxError
from ..graph import shape
from . import (
    passes_activation,
    passes_attention,
    passes_gating,
    passes_head,
    passes_identity,
    passes_norm,
    passes_residual,
)
from ._util import PassContext
from .checks import check, count_bn, count_conv
from .report import APPROXIMATE, CONVERTIBLE, NOT_CONVERTIBLE, Change, VCNNResult

PassFn = Callable[[fx.GraphModule, PassContext], "tuple[fx.GraphModule, list[Change]]"]

PASSES: list[tuple[str, PassFn]] = [
    (passes_identity.NAME, passes_identity.run),
    (passes_residual.NAME, passes_residual.run),
    (passes_gating.NAME, passes_gating.run),
    (passes_attention.NAME, passes_attention.run),
    (passes_activation.NAME, passes_activation.run),
    (passes_norm.NAME, passes_norm.run),
    (passes_head.NAME, passes_head.run),
]


def convert_traced(src: fx.GraphModule, size: Sequence[int], *, name: str, keep_norms: bool = False,
                   strict: bool = True, batch_size: int = 1) -> VCNNResult:
    """The passes, the checks and the verdict on a private copy of an already traced graph."""
    tracer = str(src.meta.get("zenfx_tracer", "unknown"))
    gm = copy.deepcopy(src)
    gm.meta.update({k: v for k, v in src.meta.items() if k not in gm.meta})
    ctx = PassContext(keep_norms=keep_norms)
    gm, changes, timings = _run_passes(gm, ctx)
    gm.recompile()
    if not any(r.startswith("internal: pass") for r in ctx.blocking):
        check(gm, ctx, size, batch_size)
    verdict = NOT_CONVERTIBLE if ctx.blocking else APPROXIMATE if ctx.approximations else CONVERTIBLE
    out = next((n for n in reversed(gm.graph.nodes) if n.op == "output"), None)
    out_shape = shape(out.args[0]) if out is not None else None
    gm.meta["zenfx_vcnn"] = True
    result = VCNNResult(gm, changes, verdict, list(ctx.blocking), list(ctx.approximations), list(ctx.notes),
                        bn_count=count_bn(gm), conv_count=count_conv(gm), name=name, tracer=tracer,
                        input_size=tuple(size), output_shape=out_shape, timings=timings)
    if strict:
        result.raise_if_not_convertible()
    return result


def _run_passes(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change], dict[str, float]]:
    """PASSES in order; a pass that crashes is a blocking reason, not a traceback."""
    changes: list[Change] = []
    timings: dict[str, float] = {}
    for pass_name, fn in PASSES:
        t0 = time.perf_counter()
        try:
            gm, recorded = fn(gm, ctx)
        except ZenfxError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            ctx.block(f"internal: pass '{pass_name}' failed: {type(exc).__name__}: {first}")
            break
        changes.extend(recorded)
        timings[pass_name] = time.perf_counter() - t0
        if ctx.blocking and pass_name == passes_head.NAME:
            break
    return gm, changes, timings


__all__ = ["PASSES", "convert_traced"]
