"""Zen-Score (Lin et al., ICCV 2021, Algorithm 1), faithful to the reference implementation.

On the VCNN graph (pre-GAP output): every conv/linear weight ~ N(0,1), biases 0; BN/GN weight 1,
bias 0; x, eps ~ N(0,1) of shape (B,C,H,W);

    Zen = log( mean_b sum_{c,h,w} |f(x) - f(x + gamma*eps)| ) + sum_BN log sqrt(mean_c sigma^2_c)

Two BN statistics (``ctx.bn_stat``):

``official`` (default)
    what the reference ``ZeroShotProxy/compute_zen_score.py`` computes: BN in train mode, running
    stats fresh (running_var = 1) with momentum 0.1, f(x) then f(x + gamma*eps), then read
    ``running_var``. PyTorch updates it with the *unbiased* batch variance v, so after the two
    passes running_var = 0.81 + 0.09*v1 + 0.1*v2 (v1 on x, v2 on the perturbed input).
``batch``
    the paper's text: the (biased) mini-batch variance each BN sees on f(x), i.e. the variance it
    actually normalises with.

Random draws, all from ``ctx.generator(ZEN_RNG_OFFSET, device)`` in this order: the weight of
every conv and linear module in ``net.modules()`` order (``normal_``), then x, then eps. The
tests rebuild the score from this protocol with hand-written conv and BN arithmetic.

The reference's standalone script lets BN running statistics carry over from one repeat to the
next (its init touches weights only), so its score drifts upward with the repeat count; its
search code builds a fresh network per candidate (fresh statistics). zenfx resets the running
statistics at every repeat, which is the search code's behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import NotConvertibleError, UsageError
from ..graph import BN_TYPES, CONV_TYPES, attr_at
from .base import ProxyContext, register_proxy

ZEN_RNG_OFFSET = 0x2E4  # generator stream for weights/inputs of zen (and phi)
OFFICIAL_MOMENTUM = 0.1
BN_STATS = ("official", "batch")

_NORM_AFFINE = BN_TYPES + (nn.GroupNorm,)


def gaussian_init_(net: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The reference's ``network_weight_gaussian_init``: conv/linear weight N(0,1), bias 0;
    BatchNorm/GroupNorm weight 1, bias 0. In place; returns ``net``.

    Weights are drawn one module at a time in ``net.modules()`` order (the documented stream);
    the constant fills are batched with ``torch._foreach_*`` (one kernel launch per list on GPU).
    """
    zeros: list[torch.Tensor] = []
    ones: list[torch.Tensor] = []
    done: set[int] = set()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, CONV_TYPES + (nn.Linear,)):
                m.weight.normal_(generator=generator)
                done.add(id(m.weight))
                if m.bias is not None:
                    zeros.append(m.bias)
            elif isinstance(m, _NORM_AFFINE):
                if getattr(m, "weight", None) is not None:
                    ones.append(m.weight)
                if getattr(m, "bias", None) is not None:
                    zeros.append(m.bias)
        # Functional conv/linear calls (a traced Conv2d subclass) read their weights through
        # get_attr nodes: the reference's init reached them as module weights, so do we.
        weights, biases = functional_weights(net)
        for w in weights:
            if id(w) not in done:
                w.normal_(generator=generator)
                done.add(id(w))
        zeros.extend(b for b in biases if id(b) not in done)
        _fill_(zeros, 0.0)
        _fill_(ones, 1.0)
    return net


def functional_weights(net: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(weights, biases) that functional conv/linear calls of a graph read through ``get_attr``,
    in graph order, each once."""
    gm = _graph_module(net)
    if gm is None:
        return [], []
    funcs = {F.conv1d, F.conv2d, F.conv3d, F.linear}
    weights: dict[int, torch.Tensor] = {}
    biases: dict[int, torch.Tensor] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in funcs:
            continue
        w = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        b = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        for arg, bucket in ((w, weights), (b, biases)):
            if isinstance(arg, fx.Node) and arg.op == "get_attr":
                try:
                    t = attr_at(gm, str(arg.target))
                except AttributeError:
                    continue
                if isinstance(t, torch.Tensor):
                    bucket.setdefault(id(t), t)
    return list(weights.values()), list(biases.values())


def _fill_(tensors: list[torch.Tensor], value: float) -> None:
    """Set every tensor to ``value`` (also when it holds NaN garbage from ``to_empty``)."""
    if not tensors:
        return
    torch._foreach_zero_(tensors)
    if value != 0.0:
        torch._foreach_add_(tensors, value)


def bn_layers(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm modules the network actually calls, in call order, each once.

    For a GraphModule only modules reached by a ``call_module`` node count ("the BN layers that
    remain in the graph"); for a plain module, every BN submodule (the reference's rule).
    """
    gm = _graph_module(net)
    if gm is None:
        return [m for m in net.modules() if isinstance(m, BN_TYPES)]
    seen: dict[int, nn.Module] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            try:
                m = gm.get_submodule(str(node.target))
            except AttributeError:
                continue
            if isinstance(m, BN_TYPES) and id(m) not in seen:
                seen[id(m)] = m
    return list(seen.values())  # type: ignore[return-value]


def functional_batchnorms(net: nn.Module) -> int:
    """How many functional ``batch_norm`` calls a graph holds (their statistics cannot be read)."""
    gm = _graph_module(net)
    if gm is None:
        return 0
    funcs = {torch.nn.functional.batch_norm, torch.batch_norm}
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target in funcs)


def _graph_module(net: nn.Module) -> fx.GraphModule | None:
    if isinstance(net, fx.GraphModule):
        return net
    body = getattr(net, "body", None)  # scoring.with_head wraps the VCNN graph as .body
    return body if isinstance(body, fx.GraphModule) else None


def reset_bn_(bns: Iterable[nn.modules.batchnorm._BatchNorm], momentum: float | None = OFFICIAL_MOMENTUM) -> None:
    """Fresh running statistics (mean 0, var 1, count 0) and the reference's momentum; what
    ``reset_running_stats`` does, batched into three foreach calls."""
    means, vars_, counts = [], [], []
    for m in bns:
        if m.track_running_stats and m.running_var is not None:
            means.append(m.running_mean)
            vars_.append(m.running_var)
            if m.num_batches_tracked is not None:
                counts.append(m.num_batches_tracked)
        if momentum is not None:
            m.momentum = momentum
    with torch.no_grad():
        _fill_(means + counts, 0.0)
        _fill_(vars_, 1.0)


def gaussian_inputs(ctx: ProxyContext, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x then eps, float32 N(0,1) from ``g`` (fresh tensors: for callers that keep them)."""
    size = (ctx.batch_size, *ctx.input_size)
    x = torch.randn(size, generator=g, device=ctx.device, dtype=torch.float32)
    eps = torch.randn(size, generator=g, device=ctx.device, dtype=torch.float32)
    return x, eps


def zen_inputs(ctx: ProxyContext, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, x + gamma*eps) in the scoring dtype, drawn like ``gaussian_inputs`` but into buffers
    kept in ``ctx.cache`` across repeats (no fresh allocation or page faults per repeat)."""
    size = (ctx.batch_size, *ctx.input_size)
    key = ("zen_inputs", size, str(ctx.device))
    bufs = ctx.cache.get(key)
    if bufs is None:
        bufs = tuple(torch.empty(size, device=ctx.device, dtype=torch.float32) for _ in range(3))
        ctx.cache.clear()
        ctx.cache[key] = bufs
    x, eps, mixed = bufs
    x.normal_(generator=g)
    eps.normal_(generator=g)
    torch.add(x, eps, alpha=ctx.mixup_gamma, out=mixed)
    if ctx.dtype != torch.float32:
        return x.to(ctx.dtype), mixed.to(ctx.dtype)
    return x, mixed


def zen_terms(net: nn.Module, ctx: ProxyContext) -> dict[str, object]:
    """Everything Algorithm 1 computes for one repeat: delta, per-BN statistics and the score.

    ``net`` is modified in place (re-initialised, BN statistics reset). Returns floats on the host:
    ``delta``, ``log_delta``, ``bn_var`` (per BN layer, the statistic used), ``bn_term`` and
    ``zen``.
    """
    mode = ctx.bn_stat
    if mode not in BN_STATS:
        raise UsageError(f"bn_stat must be one of {', '.join(BN_STATS)}, got {mode!r}")
    nfunc = functional_batchnorms(net)
    if nfunc:
        raise NotConvertibleError(f"the graph holds {nfunc} functional batch_norm call(s); Zen reads BN "
                                  "statistics from BatchNorm modules", hint="convert them to nn.BatchNorm2d")
    g = ctx.generator(ZEN_RNG_OFFSET, ctx.device)
    gaussian_init_(net, g)
    bns = bn_layers(net)
    _fresh_statistics(bns, ctx)
    net.train()
    x, mixed = zen_inputs(ctx, g)
    host, per_bn = _two_passes(net, x, mixed, bns, mode)
    return _terms(host, per_bn)


def _fresh_statistics(bns: list[nn.modules.batchnorm._BatchNorm], ctx: ProxyContext) -> None:
    """Reset the BN running statistics of this repeat, with the reference's momentum.

    ``ctx.extra["zen_reset_bn"] = False`` reproduces the reference's standalone script, where the
    statistics carry over from one repeat to the next (fresh only at the first repeat).
    """
    if ctx.extra.get("zen_reset_bn", True) or ctx.repeat_index == 0:
        reset_bn_(bns, OFFICIAL_MOMENTUM)
    else:
        for m in bns:
            m.momentum = OFFICIAL_MOMENTUM


def _variance_hooks(bns: list[nn.modules.batchnorm._BatchNorm], mode: str,
                    captured: dict[int, torch.Tensor]) -> list[torch.utils.hooks.RemovableHandle]:
    """Batch mode, and BN layers without running statistics in official mode, read the variance
    each BN sees on f(x) through a pre-hook (into ``captured``, by BN index) on the first pass only."""
    hooked = bns if mode == "batch" else [m for m in bns if m.running_var is None]
    if not hooked:
        return []

    def make_hook(idx: int):
        def hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if idx not in captured:
                t = args[0].float()
                dims = [0] + list(range(2, t.dim()))
                captured[idx] = t.var(dim=dims, unbiased=False).mean()
        return hook

    pos = {id(m): i for i, m in enumerate(bns)}
    return [m.register_forward_pre_hook(make_hook(pos[id(m)])) for m in hooked]


def _two_passes(net: nn.Module, x: torch.Tensor, mixed: torch.Tensor, bns: list[nn.modules.batchnorm._BatchNorm],
                mode: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """f(x), then f(x + gamma*eps): (delta then the per-BN statistics on the host in double, the
    per-BN statistic tensors whose sizes split them)."""
    captured: dict[int, torch.Tensor] = {}
    handles = _variance_hooks(bns, mode, captured)
    try:
        with torch.no_grad():
            out1 = net(x)
            for h in handles:
                h.remove()
            handles = []
            out2 = net(mixed)
            diff = out1 - out2 if out1.dtype == torch.float32 else out1.float() - out2.float()
            delta = diff.abs_().sum() / diff.shape[0]  # = mean over the batch of per-sample sums
            # One device->host copy per repeat: delta, then per BN layer its captured batch variance
            # or its whole running_var (channel means taken on the host, in double), rather than
            # a mean kernel per BN layer, which on a GPU costs a launch each.
            per_bn = [captured[i].reshape(1) if i in captured else m.running_var for i, m in enumerate(bns)]
            host = torch.cat([delta.reshape(1).float(), *(t.float() for t in per_bn)]).double().cpu()
    finally:
        for h in handles:
            h.remove()
    return host, per_bn


def _terms(host: torch.Tensor, per_bn: list[torch.Tensor]) -> dict[str, object]:
    """The score's parts from the host copy: log delta plus half the log of each BN's mean variance."""
    delta_v = float(host[0])
    bn_var = [float(chunk.mean()) for chunk in torch.split(host[1:], [t.numel() for t in per_bn])]
    log_delta = math.log(delta_v) if delta_v > 0 else (-math.inf if delta_v == 0 else math.nan)
    bn_term = float(0.5 * torch.log(torch.tensor(bn_var, dtype=torch.float64)).sum()) if bn_var else 0.0
    return {"delta": delta_v, "log_delta": log_delta, "bn_var": bn_var, "bn_term": bn_term,
            "zen": log_delta + bn_term}


@register_proxy(
    "zen",
    graph="vcnn",
    needs_data=False,
    reference="Lin et al., Zen-NAS, ICCV 2021, Algorithm 1; idstcv/ZenNAS ZeroShotProxy/compute_zen_score.py",
    summary="log E|f(x)-f(x+0.01 eps)|_1 + sum over BN of log sqrt(mean var): expressivity of the vanilla net",
    reinitializes=True,
)
def zen(net: nn.Module, ctx: ProxyContext) -> float:
    return float(zen_terms(net, ctx)["zen"])  # type: ignore[arg-type]
