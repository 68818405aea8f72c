"""Φ-score (Zen-NAS, Definition 1): log E_x ||∇_x f(x)||_F on the VCNN *without* BatchNorm.

f is the pre-GAP map, weights N(0,1) as for Zen (same draw protocol and stream), BN layers
removed (a timm BatchNormAct keeps its activation). The Frobenius norm of each sample's input
Jacobian J_b is estimated by autograd with Gaussian probes v (Hutchinson): E_v ||J_b^T v||^2 =
||J_b||_F^2, so one backward pass per probe gives every sample's estimate at once (samples are
independent once BN is gone). ``ctx.extra["phi_probes"]`` (default 1) sets the probe count; with
thousands of output units the estimate concentrates tightly already with one.

Theorem 1 of the paper: for moderate depth, Zen of a BN network tracks Φ of its BN-free sister
(the BN rescaling term restores the scale BN took away). Because Zen's Δ is an L1 norm of a
gamma-sized perturbation, Zen - Φ ≈ log(gamma) + ½·log(2·n_out/π), a depth-independent offset.
"""

from __future__ import annotations

import math

import torch
import torch.fx as fx
from torch import nn

from ..graph import BN_TYPES
from .base import ProxyContext, register_proxy
from .zen import ZEN_RNG_OFFSET, bn_layers, gaussian_init_, gaussian_inputs

PHI_PROBE_OFFSET = 0x9B1


def remove_batchnorm_(net: nn.Module) -> int:
    """Replace every BN module by identity (timm's BatchNormAct by its drop+act). Returns count."""
    count = 0
    for name, m in list(net.named_modules()):
        if not name or not isinstance(m, BN_TYPES):
            continue
        act = getattr(m, "act", None)
        drop = getattr(m, "drop", None)
        parts = [p for p in (drop, act) if isinstance(p, nn.Module) and not isinstance(p, nn.Identity)]
        repl: nn.Module = nn.Sequential(*parts) if parts else nn.Identity()
        parent_name, _, leaf = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, leaf, repl)
        count += 1
    if isinstance(net, fx.GraphModule):
        net.recompile()
    return count


def homogeneous(net: nn.Module) -> bool:
    """True when f is positively homogeneous in every layer's weights: a chain of conv/linear (zero
    bias), ReLU, pooling and reshapes, with no BN/other norm and no merge of two branches. Then
    scaling layer l's weights by 1/s_l scales f and its Jacobian by exactly 1/prod(s_l)."""
    from ..graph import is_batchnorm, is_cat, is_other_norm, is_tensor_add, is_tensor_mul

    if not isinstance(net, fx.GraphModule):  # a plain nn.Sequential chain of homogeneous layers
        return isinstance(net, nn.Sequential) and all(
            isinstance(m, _HOMOGENEOUS) for m in net.modules() if not isinstance(m, nn.Sequential))
    gm = net
    for n in gm.graph.nodes:
        if is_tensor_add(n) or is_tensor_mul(n) or is_cat(n) or is_batchnorm(gm, n) or is_other_norm(gm, n):
            return False
        if n.op == "call_module":
            m = gm.get_submodule(str(n.target))
            if isinstance(m, BN_TYPES):
                return False
            if not isinstance(m, _HOMOGENEOUS):
                return False
    return True


_HOMOGENEOUS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Sequential)


def rescale_weights_(net: nn.Module) -> float:
    """Divide every conv/linear weight by sqrt(fan_in) in place; returns sum of log sqrt(fan_in)."""
    total = 0.0
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.div_(math.sqrt(fan_in))
                total += 0.5 * math.log(fan_in)
    return total


def phi_terms(net: nn.Module, ctx: ProxyContext, *, keep_bn: bool = False) -> dict[str, float]:
    """One repeat of Φ. ``keep_bn=True`` scores the BN network itself (train-mode BN, no rescaling):
    the quantity the paper shows stays flat with depth, which is why Zen adds the BN term.

    On a homogeneous graph (see :func:`homogeneous`) the N(0,1) weights are divided by
    sqrt(fan_in) before the passes and sum(log sqrt(fan_in)) is added back to the log: the same
    value, without the float32 overflow a deep BN-free net with N(0,1) weights runs into
    (``ctx.extra["phi_rescale"] = False`` turns this off).
    """
    if not keep_bn:
        remove_batchnorm_(net)
    g = ctx.generator(ZEN_RNG_OFFSET, ctx.device)
    gaussian_init_(net, g)
    log_scale = 0.0
    if not keep_bn and ctx.extra.get("phi_rescale", True) and homogeneous(net):
        log_scale = rescale_weights_(net)
    if keep_bn:
        for m in bn_layers(net):
            if m.track_running_stats and m.running_var is not None:
                m.reset_running_stats()
    net.train()
    net.requires_grad_(False)
    x, _eps = gaussian_inputs(ctx, g)
    x = x.to(ctx.dtype).requires_grad_(True)
    probes = int(ctx.extra.get("phi_probes", 1))
    gp = ctx.generator(PHI_PROBE_OFFSET, ctx.device)
    with torch.enable_grad():
        out = net(x)
        sq = torch.zeros(ctx.batch_size, dtype=torch.float64, device=out.device)
        for k in range(probes):
            v = torch.randn(out.shape, generator=gp, device=out.device, dtype=torch.float32).to(out.dtype)
            (grad,) = torch.autograd.grad(out, x, grad_outputs=v, retain_graph=k < probes - 1)
            sq += grad.double().flatten(1).pow(2).sum(1)
    fro = (sq / probes).sqrt()  # per-sample ||J_b||_F estimate (of the rescaled net)
    mean = float(fro.mean())
    log_mean = math.log(mean) if mean > 0 else (-math.inf if mean == 0 else math.nan)
    return {"grad_fro_scaled": mean, "log_scale": log_scale, "phi": log_mean + log_scale}


@register_proxy(
    "phi",
    graph="vcnn",
    needs_data=False,
    reference="Lin et al., Zen-NAS, ICCV 2021, Definition 1 (Φ-score) and Theorem 1",
    summary="log E||grad_x f(x)||_F of the BN-free vanilla net by autograd (Hutchinson probes)",
    reinitializes=True,
)
def phi(net: nn.Module, ctx: ProxyContext) -> float:
    return phi_terms(net, ctx)["phi"]
