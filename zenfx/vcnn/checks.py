"""After the passes: the graph must lint, run, and be vanilla. Whatever is not becomes a reason.

A vanilla CNN is a chain: every compute node reads at most one input-dependent tensor. So any node
that still merges two branches (concat, add, multiply, matmul, ...) is reported by what it is, and
so is any non-ReLU activation or a graph with no convolution left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch.fx as fx

from ..errors import ZenfxError
from ..graph import (
    data_inputs,
    input_dependent,
    is_add,
    is_batchnorm,
    is_cat,
    is_conv,
    is_linear,
    is_mul,
    is_non_relu_activation,
    shape,
)
from ..tracing import propagate_shapes
from ._util import PassContext, describe

STACK_TARGETS = {"stack", "hstack", "vstack", "dstack"}


def _merge_kind(gm: fx.GraphModule, n: fx.Node) -> str:
    if is_cat(n) or getattr(n.target, "__name__", n.target) in STACK_TARGETS:
        return "concat"
    if is_add(n):
        return "add"
    if is_mul(n):
        return "mul"
    if n.op == "call_module":
        return f"{type(gm.get_submodule(str(n.target))).__name__} module"
    name = getattr(n.target, "__name__", str(n.target))
    return str(name)


def check(gm: fx.GraphModule, ctx: PassContext, input_size: Sequence[int], batch_size: int = 1) -> None:
    """Everything still not vanilla after the passes becomes a blocking reason on ``ctx``."""
    if not _lints_and_runs(gm, ctx, input_size, batch_size):
        return
    dep = input_dependent(gm)
    merges: dict[str, list[fx.Node]] = defaultdict(list)
    acts: list[fx.Node] = []
    for n in gm.graph.nodes:
        if n.op not in ("call_function", "call_method", "call_module"):
            continue
        if len(data_inputs(n, dep)) >= 2:
            merges[_merge_kind(gm, n)].append(n)
        if is_non_relu_activation(gm, n):
            acts.append(n)
    _block_ambiguous(ctx, merges)
    for kind, nodes in merges.items():
        ctx.block(_merge_reason(gm, kind, nodes, dep))
    opaque = _opaque_modules(gm)
    if opaque:
        names = sorted({type(gm.get_submodule(str(n.target))).__name__ for n in opaque})
        ctx.block(f"opaque module: {len(opaque)} module(s) the tracer kept whole ({', '.join(names[:4])}) hold "
                  f"layers whose wiring (residuals, attention, merges) cannot be seen or rewritten")
    if acts:
        ctx.block(f"internal: {len(acts)} non-ReLU activation(s) left (first: {describe(gm, acts[0])})")
    _block_no_convolution(gm, ctx)


def _lints_and_runs(gm: fx.GraphModule, ctx: PassContext, input_size: Sequence[int], batch_size: int) -> bool:
    """The converted graph lints and runs on meta/fake tensors (re-annotating its shapes); else a reason."""
    try:
        gm.graph.lint()
    except Exception as exc:  # pragma: no cover - a pass bug; say it instead of returning a broken graph
        ctx.block(f"internal: converted graph does not lint: {exc}")
        return False
    was_training = gm.training
    try:
        gm.eval()
        propagate_shapes(gm, input_size, batch_size)
    except ZenfxError as exc:
        ctx.block(f"internal: converted graph does not run: {exc}")
        return False
    except Exception as exc:  # pragma: no cover
        ctx.block(f"internal: converted graph does not run: {type(exc).__name__}: {exc}")
        return False
    finally:
        gm.train(was_training)
    return True


def _block_ambiguous(ctx: PassContext, merges: dict[str, list[fx.Node]]) -> None:
    """Adds the residual pass could not decide (equal branches) become one reason of their own."""
    tied = [n for n in merges.get("add", []) if n.name in ctx.ambiguous]
    if not tied:
        return
    merges["add"] = [n for n in merges["add"] if n.name not in ctx.ambiguous]
    if not merges["add"]:
        del merges["add"]
    ctx.block(f"ambiguous residual: {len(tied)} add(s) merge two branches of equal weight, so the main branch "
              f"cannot be told from the shortcut: {', '.join(ctx.ambiguous[n.name] for n in tied[:3])}")


def _merge_reason(gm: fx.GraphModule, kind: str, nodes: list[fx.Node], dep: set[fx.Node]) -> str:
    first = describe(gm, nodes[0])
    if kind == "concat":
        return (f"branches merged by concat: {len(nodes)} concatenation(s) join separately computed branches "
                f"(first: {first}); multi-branch concat blocks (DenseNet, Inception, ShuffleNet, GhostNet) "
                f"have no vanilla-CNN form")
    if kind == "add":
        ins = data_inputs(nodes[0], dep)
        return (f"unresolved add merge: {len(nodes)} add(s) of two branches that are neither a residual nor a "
                f"pooled context (first: {first}, {shape(ins[0])} + {shape(ins[1])})")
    if kind == "mul":
        return (f"multiplicative merge: {len(nodes)} multiply(ies) of two branches that are not a pooled gate "
                f"(first: {first}); gated/bilinear units have no vanilla-CNN form")
    return f"two-branch op: {len(nodes)} {kind} op(s) combine two computed tensors (first: {first})"


def _block_no_convolution(gm: fx.GraphModule, ctx: PassContext) -> None:
    if any(r.startswith("no convolution left") for r in ctx.blocking):
        return
    convs = sum(1 for n in gm.graph.nodes if is_conv(gm, n))
    linears = sum(1 for n in gm.graph.nodes if is_linear(gm, n))
    if convs == 0:
        ctx.block("no convolution left after stripping: the converted graph has no convolution")
    elif convs <= 1 and linears >= 2 * max(convs, 1):
        ctx.block(f"no convolution left after stripping: only {convs} convolution (a patch-embedding stem) and "
                  f"{linears} linear layers remain (transformer / MLP body)")


# Leaf modules whose insides are a known plain chain (after their activations became ReLU).
PLAIN_LEAVES = {"ConvMlp", "Conv2dSame", "StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame",
                "MaxPool2dSame", "AvgPool2dSame", "SelectAdaptivePool2d", "BlurPool2d", "Mlp"}


def _opaque_modules(gm: fx.GraphModule) -> list[fx.Node]:
    """call_module nodes on a container that is not torch.nn's own, a BN/conv subclass or a known plain chain."""
    from torch import nn

    out = []
    for n in gm.graph.nodes:
        if n.op != "call_module":
            continue
        m = gm.get_submodule(str(n.target))
        if type(m).__module__.startswith(("torch.nn", "torch.ao.nn", "zenfx.")):
            continue
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.conv._ConvNd, nn.Linear)):
            continue
        if type(m).__name__ in PLAIN_LEAVES or not any(True for _ in m.parameters()):
            continue
        out.append(n)
    return out


def count_bn(gm: fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if is_batchnorm(gm, n))


def count_conv(gm: fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if is_conv(gm, n))
