"""AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024; code ``cvlab-yonsei/AZ-NAS``, ``ZeroShotProxy/compute_az_nas_score.py``): four proxies
from one forward and one backward pass, on the network as built (residuals kept), train mode.

Protocol, in this order (all random draws from ``ctx.generator(AZ_RNG_OFFSET, device)``):

1. Kaiming normal fan-in init (``nonlinearity='relu'``: std = sqrt(2 / fan_in)) of every Conv and
   Linear weight in ``net.modules()`` order, biases 0; BatchNorm/GroupNorm weight 1, bias 0.
2. x ~ N(0, 1) of shape (batch, C, H, W) (or the first batch of ``ctx.batches``).
3. One forward in train mode; the feature maps F_0..F_L at the block feature points
   (:mod:`zenfx.proxies.az_points`).
4. **Expressivity**: for each F_i, the covariance of its (B*H*W, C) pixels (mean removed, divided
   by B*H*W), its eigenvalues s, p = s / sum s, entropy e_i = -sum p log(p + 1e-8).
   ``az_expressivity`` = sum_i e_i.
5. **Progressivity**: ``az_progressivity`` = min_i (e_i - e_{i-1}).
6. **Trainability**: for i = L..1, random signs g_out (+-1, Bernoulli 1/2) shaped like F_i,
   g_in = dF_i/dF_{i-1}^T g_out (``autograd.grad``, graph freed as it goes). When F_{i-1} is
   larger than F_i (a stride), g_in is pixel-unshuffled by the stride ``int(H_in / H_out)``
   (zenfx: when the sizes do not divide, g_in is zero-padded to the next multiple first, where
   the reference would fail). M = g_in^T g_out / (B*H_out*W_out) over pixels; sigma = the largest
   singular value of M; score -sigma - 1/(sigma + 1e-6) + 2. An identity block (g_in equals
   g_out exactly) scores -inf. ``az_trainability`` = the mean over the block pairs.
7. **Complexity**: ``az_complexity`` = the Conv and Linear MACs of one image (:func:`conv_linear_macs`).

NaN becomes -inf (the reference's rule), and so does a quantity that needs two feature points on a
model that has one. Values of -inf are ranks, not failures (``ProxySpec.inf_is_rank``).
``extra={"az_clamp_eigenvalues": True}`` clamps the covariance eigenvalues at 0 before the entropy
(see :func:`block_entropy`): not the reference, but what a rank-deficient stem needs (NATS-Bench-SSS).

The four are combined by rank aggregation within a pool (``zenfx.proxies.aggregate``): ``az``.
When several of the first three are asked for on one model, the forward/backward runs once: the
result is kept in ``ctx.shared`` under the seed, repeat, input and graph it was computed with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..graph import BN_TYPES, CONV_TYPES
from .az_points import FeaturePoints, graph_of, run_features
from .base import ProxyContext, register_proxy

AZ_RNG_OFFSET = 0xA2
AZ_MEMBERS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
AZ_CLAMPED_MEMBERS = ("az_expressivity_clamped", "az_progressivity_clamped", "az_trainability_clamped",
                      "az_complexity")
REFERENCE = ("Lee & Ham, AZ-NAS, CVPR 2024 (cvlab-yonsei/AZ-NAS ZeroShotProxy/compute_az_nas_score.py)")

_NORM_AFFINE = BN_TYPES + (nn.GroupNorm,)


def kaiming_fanin_init_(net: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The reference's ``kaiming_normal_fanin_init``: Conv/Linear weight ~ N(0, 2/fan_in), bias 0;
    BN/GN weight 1, bias 0. Weights drawn one module at a time in ``net.modules()`` order (with
    ``generator=None`` the global RNG, drawing exactly what ``model.apply(kaiming_normal_fanin_init)``
    draws for the same module order); functional conv/linear weights of a graph afterwards."""
    done: set[int] = set()
    with torch.no_grad():
        for m in net.modules():
            _init_module(m, generator, done)
        _init_functional(net, generator, done)
    return net


def _init_module(m: nn.Module, generator: torch.Generator | None, done: set[int]) -> None:
    if isinstance(m, CONV_TYPES + (nn.Linear,)):
        _kaiming_(m.weight, generator)
        done.add(id(m.weight))
        if m.bias is not None:
            m.bias.zero_()
    elif isinstance(m, _NORM_AFFINE) and getattr(m, "affine", True):
        if getattr(m, "weight", None) is not None:
            m.weight.fill_(1.0)
        if getattr(m, "bias", None) is not None:
            m.bias.zero_()


def _init_functional(net: nn.Module, generator: torch.Generator | None, done: set[int]) -> None:
    """Weights a graph passes to functional conv/linear calls (not owned by a module initialised above)."""
    from .zen import functional_weights

    weights, biases = functional_weights(net)
    for w in weights:
        if id(w) not in done and w.ndim >= 2:
            _kaiming_(w, generator)
            done.add(id(w))
    for b in biases:
        if id(b) not in done:
            b.zero_()


def _kaiming_(w: torch.Tensor, generator: torch.Generator | None) -> None:
    fan_in = w.shape[1] * math.prod(w.shape[2:]) if w.ndim >= 2 else w.numel()
    std = math.sqrt(2.0) / math.sqrt(max(1, fan_in))
    w.normal_(0.0, std, generator=generator)


def _macs_from_shapes(net: nn.Module, input_size: Sequence[int]) -> int | None:
    import torch.fx as fx

    if not isinstance(net, fx.GraphModule) or tuple(net.meta.get("zenfx_input_size", ())) != tuple(input_size):
        return None
    total = 0
    for n in net.graph.nodes:
        if n.op != "call_module":
            continue
        m = net.get_submodule(str(n.target))
        if not isinstance(m, CONV_TYPES + (nn.Linear,)):
            continue
        shp = n.meta.get("shape")
        if not (isinstance(shp, tuple) and shp and all(isinstance(d, int) for d in shp)):
            return None
        out = math.prod(shp) // shp[0]  # the record is at batch 1 or more: per image
        if isinstance(m, nn.Linear):
            total += out // shp[-1] * m.in_features * m.out_features
        else:
            total += out * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return total


# --------------------------------------------------------------------------- the three measures


def block_entropy(feat: torch.Tensor, clamp: bool = False) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of a (B, C, H, W) map.

    ``clamp`` (zenfx's option, off by default as in the reference): eigenvalues below 0 are set to
    0. A rank-deficient covariance (a stem conv with more output channels than its 3*k*k inputs) gets
    eigenvalues of about -1e-7 from ``eigvalsh``; the reference's log(p + 1e-8) of such a p is NaN,
    hence -inf for the whole network."""
    b, c, h, w = feat.shape
    f = feat.detach().permute(0, 2, 3, 1).reshape(b * h * w, c)
    f = f - f.mean(dim=0, keepdim=True)
    sigma = f.t().mm(f) / f.shape[0]
    s = torch.linalg.eigvalsh(sigma)
    if clamp:
        s = s.clamp(min=0)
    p = s / s.sum()
    return float(((-p) * torch.log(p + 1e-8)).sum())


def _unshuffle(g_in: torch.Tensor, ho: int, wo: int) -> torch.Tensor:
    hi = g_in.shape[2]
    stride = int(hi / ho)
    if stride * ho != hi or stride * wo != g_in.shape[3]:  # zenfx: pad to a multiple (the reference fails)
        stride = max(1, math.ceil(hi / ho))
        g_in = F.pad(g_in, (0, stride * wo - g_in.shape[3], 0, stride * ho - hi))
    return F.pixel_unshuffle(g_in, stride)


def trainability_pair(f_out: torch.Tensor, f_in: torch.Tensor, generator: torch.Generator | None) -> float:
    """One block pair's trainability term (see the module docstring, step 6)."""
    g_out = (torch.bernoulli(torch.full_like(f_out, 0.5), generator=generator) - 0.5) * 2
    if f_in.requires_grad and f_out.requires_grad and f_out.grad_fn is not None:
        g = torch.autograd.grad(f_out, f_in, g_out, retain_graph=False, allow_unused=True)[0]
    else:
        g = None
    g_in = torch.zeros_like(f_in) if g is None else g  # no path from F_{i-1} to F_i: a zero Jacobian
    if g_out.shape == g_in.shape and bool(torch.all(g_in == g_out)):
        return -math.inf
    bo, co, ho, wo = g_out.shape
    if g_in.shape[2] != ho or g_in.shape[3] != wo:
        g_in = _unshuffle(g_in, ho, wo)
    ci = g_in.shape[1]
    mo = g_out.permute(0, 2, 3, 1).reshape(bo * ho * wo, co)
    mi = g_in.permute(0, 2, 3, 1).reshape(-1, ci)
    mat = mi.t().mm(mo) / (bo * ho * wo)
    if mat.shape[0] < mat.shape[1]:
        mat = mat.t()
    smax = float(torch.linalg.svdvals(mat).max())
    return -smax - 1.0 / (smax + 1e-6) + 2.0


@dataclass
class AZMeasures:
    expressivity: float
    progressivity: float
    trainability: float
    entropies: list[float]
    pair_scores: list[float]
    points: FeaturePoints

    def to_dict(self) -> dict[str, Any]:
        return {"expressivity": self.expressivity, "progressivity": self.progressivity,
                "trainability": self.trainability, "entropies": list(self.entropies),
                "pair_scores": list(self.pair_scores), "feature_points": self.points.names(),
                "blocks": list(self.points.blocks), "rule": self.points.rule}


def _nan_to_neg_inf(v: float) -> float:
    return -math.inf if math.isnan(v) else float(v)


def measures_from_features(feats: Sequence[torch.Tensor], points: FeaturePoints,
                           generator: torch.Generator | None, *, clamp: bool = False) -> AZMeasures:
    """Expressivity, progressivity and trainability from the feature tensors of one forward."""
    ent = [block_entropy(f, clamp) for f in feats]
    arr = np.array(ent, dtype=np.float64)
    expressivity = float(np.sum(arr))
    progressivity = float(np.min(arr[1:] - arr[:-1])) if len(arr) >= 2 else math.nan
    pairs = [trainability_pair(feats[i], feats[i - 1], generator) for i in reversed(range(1, len(feats)))]
    with np.errstate(invalid="ignore"):
        trainability = float(np.mean(pairs)) if pairs else math.nan
    return AZMeasures(_nan_to_neg_inf(expressivity), _nan_to_neg_inf(progressivity),
                      _nan_to_neg_inf(trainability), ent, pairs, points)


def az_measures(net: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None, *,
                init: bool = True, clamp: bool = False) -> AZMeasures:
    """The reference's ``compute_nas_score`` on any module: init (unless ``init=False``), train-mode
    forward on ``x``, the three measures. With ``generator=None`` every draw uses the global RNG in
    the reference's order (init, then the caller's ``x``, then the signs), so a side-by-side run from
    the same ``torch.manual_seed`` reproduces the reference bit for bit when the feature points agree."""
    gm = graph_of(net)
    if init:
        kaiming_fanin_init_(net, generator)
    gm.train()
    for p in gm.parameters():
        p.requires_grad_(True)
    feats, points = run_features(gm, x)
    if not feats:
        raise UsageError(f"{type(net).__name__} has no feature point for AZ-NAS (no convolution reaches its output)")
    return measures_from_features(feats, points, generator, clamp=clamp)


def _input(ctx: ProxyContext, generator: torch.Generator) -> torch.Tensor:
    if ctx.batches is not None:
        from ..data import draw

        return draw(ctx, 1)[0][0]
    size = (ctx.batch_size, *ctx.input_size)
    return torch.randn(size, generator=generator, device=ctx.device, dtype=ctx.dtype)


def shared_measures(net: nn.Module, ctx: ProxyContext, clamp: bool = False) -> AZMeasures:
    """The three measures for this context, computed once per (seed, repeat, input, graph, clamp) and
    kept in ``ctx.shared`` so that the other AZ proxies of the same model reuse them."""
    clamp = clamp or bool(ctx.extra.get("az_clamp_eigenvalues", False))
    key = ("az", ctx.seed, ctx.repeat_index, ctx.batch_size, tuple(ctx.input_size), str(ctx.device),
           str(ctx.dtype), ctx.extra.get("graph"), id(ctx.batches), clamp)
    hit = ctx.shared.get(key)
    if hit is not None:
        return hit
    gen = ctx.generator(AZ_RNG_OFFSET, ctx.device)
    kaiming_fanin_init_(net, gen)
    x = _input(ctx, gen)
    res = az_measures(net, x, gen, init=False, clamp=clamp)
    ctx.shared[key] = res
    return res


def _register(name: str, attr: str, summary: str, clamp: bool = False) -> None:
    def fn(net: nn.Module, ctx: ProxyContext) -> float:
        return float(getattr(shared_measures(net, ctx, clamp), attr))

    fn.__name__ = name
    register_proxy(name, graph="original", needs_data=False, reference=REFERENCE, summary=summary,
                   reinitializes=True, inf_is_rank=True, shared_pass="az_clamped" if clamp else "az")(fn)


_SUMMARIES = {
    "expressivity": "sum over blocks of the entropy of the normalised eigenvalues of the feature covariance "
                    "(Kaiming init)",
    "progressivity": "smallest block-to-block increase of that entropy",
    "trainability": "mean over block pairs of -s - 1/s + 2, s the spectral norm of the sign-probed block Jacobian",
}
for _attr, _summary in _SUMMARIES.items():
    _register(f"az_{_attr}", _attr, _summary)
    # The same measure with the covariance eigenvalues clamped at 0 (a covariance has none below;
    # eigvalsh's -1e-7 on a rank-deficient one makes the reference's entropy NaN, hence -inf): a
    # stem wider than its 27-dimensional input (NATS-SSS C0 >= 32) stays scorable. ``az_clamped``
    # aggregates these three with az_complexity.
    _register(f"az_{_attr}_clamped", _attr, _summary + "; eigenvalues clamped at 0", clamp=True)


@register_proxy(
    "az_complexity",
    graph="original",
    needs_data=False,
    reference=REFERENCE + "; FLOPs of the network (Conv/Linear MACs here)",
    summary="Conv and Linear MACs of one image at the scoring resolution (AZ-NAS's complexity)",
    deterministic=True,
    mutates=False,
)
def az_complexity(net: nn.Module, ctx: ProxyContext) -> float:
    return float(conv_linear_macs(net, tuple(ctx.input_size)))


def conv_linear_macs(net: nn.Module, input_size: Sequence[int]) -> int:
    """MACs of the Conv and Linear layers for one image: from the shape record of a zenfx-traced graph
    at the same input size, else from one forward on zeros with hooks. What the reference's
    MobileNetV2 ``get_FLOPs`` counts (convolutions and the classifier), equal to
    ``zenfx.cost.flops.count_macs`` on CNNs made of those layers, and a fraction of its cost (a search
    scores it per candidate)."""
    from_shapes = _macs_from_shapes(net, input_size)
    if from_shapes is not None:
        return from_shapes
    total = [0]

    def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(m, nn.Linear):
            total[0] += out.numel() // out.shape[-1] * m.in_features * m.out_features
        else:
            total[0] += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, CONV_TYPES + (nn.Linear,))]
    ref = next(iter(list(net.parameters()) + list(net.buffers())), None)
    dev = ref.device if ref is not None else torch.device("cpu")
    dt = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    try:
        with torch.no_grad():
            net(torch.zeros((1, *input_size), device=dev, dtype=dt))
    finally:
        for h in hs:
            h.remove()
    return total[0]


__all__ = ["AZMeasures", "AZ_CLAMPED_MEMBERS", "AZ_MEMBERS", "az_measures", "block_entropy", "kaiming_fanin_init_",
           "measures_from_features", "shared_measures", "trainability_pair"]
