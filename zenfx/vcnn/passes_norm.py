"""Pass 6: BatchNorm is kept in every form; other normalisations become BatchNorm over the same channels.

- ``call_module`` BatchNorm: kept as is.
- functional ``batch_norm`` (what fx makes of timm's BatchNormAct2d: its tensors as get_attr plus a
  ``training`` flag frozen at trace time) becomes a ``call_module`` BatchNorm holding the same
  tensors, so the converted graph follows ``.train()`` / ``.eval()`` like any BN (Zen-score reads
  train-mode statistics). The BN-with-activation module's ReLU becomes ``torch.relu``.
- LayerNorm over channels, GroupNorm, InstanceNorm, LocalResponseNorm: replaced by BatchNorm over the
  same channels (an approximation, recorded), or kept with ``keep_norms=True``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..graph import BN_FUNCS, OTHER_NORM_TYPES, attr_at, node_module, shape
from ._util import PassContext, describe, finish, record, replace_with, set_module, unique_module_name
from .modules import ChannelsFirstBatchNorm, ChannelsLastBatchNorm
from .report import Change

NAME = "norm"

LN_FUNCS = {F.layer_norm, torch.layer_norm}
GN_FUNCS = {F.group_norm, torch.group_norm}
IN_FUNCS = {F.instance_norm, torch.instance_norm}
RMS_FUNCS = {F.rms_norm} if hasattr(F, "rms_norm") else set()
RMS_TYPES: tuple[type[nn.Module], ...] = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()


def _arg(n: fx.Node, idx: int, key: str, default: Any = None) -> Any:
    if len(n.args) > idx:
        return n.args[idx]
    return n.kwargs.get(key, default)


def _attr(gm: fx.GraphModule, a: Any) -> tuple[torch.Tensor | None, str | None]:
    """Tensor and target of a get_attr argument; (None, None) for None; raises for computed args."""
    if a is None:
        return None, None
    if isinstance(a, fx.Node) and a.op == "get_attr":
        return attr_at(gm, str(a.target)), str(a.target)
    raise ValueError("computed argument")


def _prefix(targets: list[str | None]) -> str | None:
    prefixes = {t.rpartition(".")[0] for t in targets if t}
    return prefixes.pop() if len(prefixes) == 1 else None


def _install(gm: fx.GraphModule, node: fx.Node, prefix: str | None, module: nn.Module, base: str) -> str:
    """Put ``module`` at ``prefix`` when nothing else calls into it, else at a fresh name; return the target."""
    graph = gm.graph
    if prefix:
        inner = [u for u in graph.nodes if u.op == "call_module" and str(u.target).startswith(prefix + ".")]
        for u in inner:  # BatchNormAct's .act (already ReLU after the activation pass)
            m = node_module(gm, u)
            if isinstance(m, nn.ReLU) and u.args:
                with graph.inserting_before(u):
                    r = graph.call_function(torch.relu, (u.args[0],))
                r.meta = dict(u.meta)
                replace_with(u, r)
                graph.erase_node(u)
            elif isinstance(m, nn.Identity) and u.args:
                replace_with(u, u.args[0])  # type: ignore[arg-type]
                graph.erase_node(u)
        still = [u for u in graph.nodes if u.op == "call_module" and str(u.target).startswith(prefix + ".")]
        if not still:
            set_module(gm, prefix, module)
            return prefix
    target = unique_module_name(gm, (prefix or base) + "_bn")
    gm.add_submodule(target, module)
    return target


def _swap_to_module(gm: fx.GraphModule, n: fx.Node, x: fx.Node, target: str) -> fx.Node:
    with gm.graph.inserting_before(n):
        new = gm.graph.call_module(target, (x,))
    new.meta = dict(n.meta)
    replace_with(n, new)
    return new


def _functional_bn(gm: fx.GraphModule, n: fx.Node, changes: list[Change], ctx: PassContext) -> None:
    x = n.args[0]
    try:
        rm, t_rm = _attr(gm, _arg(n, 1, "running_mean"))
        rv, t_rv = _attr(gm, _arg(n, 2, "running_var"))
        w, t_w = _attr(gm, _arg(n, 3, "weight"))
        b, t_b = _attr(gm, _arg(n, 4, "bias"))
    except (ValueError, AttributeError):
        ctx.note(f"functional batch_norm {n.name} with computed arguments kept as a function")
        return
    s = shape(x) if isinstance(x, fx.Node) else None
    if s is None or len(s) < 2:
        return
    c = s[1]
    eps = float(_arg(n, 7, "eps", 1e-5))
    momentum = _arg(n, 6, "momentum", 0.1)
    bn = (nn.BatchNorm2d if len(s) == 4 else nn.BatchNorm1d if len(s) in (2, 3) else ChannelsFirstBatchNorm)(
        c, eps=eps, momentum=momentum, affine=w is not None, track_running_stats=rm is not None,
        device=(w if w is not None else rm if rm is not None else torch.empty(0)).device)
    if w is not None:
        bn.weight = w if isinstance(w, nn.Parameter) else nn.Parameter(w)
    if b is not None:
        bn.bias = b if isinstance(b, nn.Parameter) else nn.Parameter(b)
    if rm is not None and rv is not None:
        bn.running_mean, bn.running_var = rm, rv
    prefix = _prefix([t_rm, t_rv, t_w, t_b])
    target = _install(gm, n, prefix, bn, n.name)
    _swap_to_module(gm, n, x, target)  # type: ignore[arg-type]
    record(changes, NAME, n, "bn_module", kept=f"{target} ({type(bn).__name__})", dropped=[n.name],
           detail="functional batch_norm (e.g. timm BatchNormAct) -> call_module BatchNorm with the same tensors")


def _replacement(kind: str, s: tuple[int, ...], normalized: tuple[int, ...] | None) -> tuple[nn.Module | None, str]:
    """The BN that stands in for a norm of ``kind`` on input shape ``s``, or (None, why not)."""
    if kind == "layer_norm":
        if normalized is None or len(normalized) != 1:
            return None, f"LayerNorm over {tuple(normalized or ())} (not over channels alone)"
        c = normalized[0]
        if s[-1] == c:
            return (ChannelsLastBatchNorm(c),
                    f"LayerNorm over the last dim ({c} channels) -> BatchNorm over the same channels")
        if len(s) >= 3 and s[1] == c:
            return ChannelsFirstBatchNorm(c), f"LayerNorm over channels ({c}) -> BatchNorm over the same channels"
        return None, f"LayerNorm over {c} features of a {s} tensor"
    c = s[1]
    return ChannelsFirstBatchNorm(c) if len(s) != 4 else nn.BatchNorm2d(c), f"{kind} over {c} channels -> BatchNorm"


def _copy_affine(bn: nn.Module, weight: Any, bias: Any) -> None:
    with torch.no_grad():
        for name, t in (("weight", weight), ("bias", bias)):
            p = getattr(bn, name, None)
            if isinstance(t, torch.Tensor) and isinstance(p, torch.Tensor) and t.shape == p.shape:
                setattr(bn, name, nn.Parameter(t.detach().clone() if t.device.type != "meta" else t.detach()))


class _NormSite(NamedTuple):
    """What a non-BN normalisation node is: its kind, what it normalises over, its affine tensors,
    the module path those live under (functional calls) and how the report names it."""
    kind: str
    normalized: tuple[int, ...] | None
    weight: Any
    bias: Any
    prefix: str | None
    label: str


def _other_norm(gm: fx.GraphModule, n: fx.Node, changes: list[Change], ctx: PassContext) -> None:
    x = n.args[0] if n.args else n.kwargs.get("input")
    s = shape(x) if isinstance(x, fx.Node) else None
    if s is None:
        return
    m = node_module(gm, n)
    site = _module_norm(n, m) if m is not None else _functional_norm(gm, n)
    label = site.label
    if ctx.keep_norms:
        record(changes, NAME, n, "norm_kept", kept=label, detail=f"{site.kind} kept (keep_norms=True)",
               approximate=True)
        ctx.approx("norms kept: non-BatchNorm normalisation left in place (keep_norms=True)")
        return
    bn, why = _replacement(site.kind, s, site.normalized)
    if bn is None:
        record(changes, NAME, n, "norm_kept", kept=label, detail=f"kept: {why} has no BatchNorm equivalent",
               approximate=True)
        ctx.approx(f"norm kept: {why} has no BatchNorm equivalent and was left in place")
        return
    target, bn = _put_batchnorm(gm, n, x, m, site, bn)  # type: ignore[arg-type]
    record(changes, NAME, n, "norm_replaced", kept=f"{target} ({type(bn).__name__})", dropped=[label], detail=why,
           approximate=True)
    ctx.approx("norms replaced: LayerNorm / GroupNorm / other normalisation replaced by BatchNorm over the "
               "same channels")


def _module_norm(n: fx.Node, m: nn.Module) -> _NormSite:
    """A norm module (LayerNorm, GroupNorm, RMSNorm, InstanceNorm, LocalResponseNorm, ...)."""
    kinds = {nn.LayerNorm: "layer_norm", nn.GroupNorm: "group_norm", nn.LocalResponseNorm: "local_response_norm"}
    kind = kinds.get(
        type(m), "layer_norm" if isinstance(m, nn.LayerNorm) else "group_norm" if isinstance(m, nn.GroupNorm)
        else "layer_norm" if RMS_TYPES and isinstance(m, RMS_TYPES)
        else "instance_norm" if "Instance" in type(m).__name__ else type(m).__name__)
    normalized = tuple(m.normalized_shape) if isinstance(m, (nn.LayerNorm, *RMS_TYPES)) else None
    return _NormSite(kind, normalized, getattr(m, "weight", None), getattr(m, "bias", None), None,
                     f"{n.target} ({type(m).__name__})")


def _functional_norm(gm: fx.GraphModule, n: fx.Node) -> _NormSite:
    """A functional norm call; its weight and bias only when they are get_attr tensors (else none)."""
    kind = ("layer_norm" if n.target in LN_FUNCS or n.target in RMS_FUNCS else "group_norm" if n.target in GN_FUNCS
            else "instance_norm")
    normalized = tuple(_arg(n, 1, "normalized_shape")) if kind == "layer_norm" else None
    prefix: str | None = None
    try:
        wi = 2 if kind == "layer_norm" else 2 if kind == "group_norm" else 3
        weight, t_w = _attr(gm, _arg(n, wi, "weight"))
        bias, t_b = _attr(gm, _arg(n, wi + 1, "bias"))
        prefix = _prefix([t_w, t_b])
    except (ValueError, AttributeError):
        weight = bias = None
    return _NormSite(kind, normalized, weight, bias, prefix, describe(gm, n))


def _put_batchnorm(gm: fx.GraphModule, n: fx.Node, x: fx.Node, m: nn.Module | None, site: _NormSite,
                   bn: nn.Module) -> tuple[str, nn.Module]:
    """Move ``bn`` to the model's device with the norm's affine tensors, and put it where the norm
    was: in the module's place, or as a new call_module for a functional call. Returns (target, bn)."""
    weight = site.weight
    ref = weight if isinstance(weight, torch.Tensor) else next(iter(list(gm.parameters()) + list(gm.buffers())), None)
    if ref is not None:
        bn = bn.to(ref.device)
    _copy_affine(bn, weight, site.bias)
    if m is not None:
        set_module(gm, str(n.target), bn)
        return str(n.target), bn
    target = _install(gm, n, site.prefix, bn, n.name)
    _swap_to_module(gm, n, x, target)
    return target, bn


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    for n in list(gm.graph.nodes):
        if getattr(n, "_erased", False) or not n.users:
            continue
        if n.op == "call_function":
            try:
                if n.target in BN_FUNCS:
                    _functional_bn(gm, n, changes, ctx)
                elif n.target in LN_FUNCS or n.target in GN_FUNCS or n.target in IN_FUNCS or n.target in RMS_FUNCS:
                    _other_norm(gm, n, changes, ctx)
            except TypeError:
                continue
        elif n.op == "call_module" and isinstance(node_module(gm, n), OTHER_NORM_TYPES + RMS_TYPES):
            _other_norm(gm, n, changes, ctx)
    return finish(gm), changes
