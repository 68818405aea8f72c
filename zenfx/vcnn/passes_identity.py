"""Pass 1: dropout, drop-path / stochastic depth, layer-scale and Identity wrappers become identity.

All of these are the identity in eval mode or at the scale Zen-NAS scores at (layer-scale
multiplies by a learnt per-channel constant, which the VCNN form leaves out).
"""

from __future__ import annotations

import functools

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..graph import data_inputs, input_dependent, is_mul, loaded, node_module
from ._util import PassContext, finish, record, replace_with
from .report import Change

NAME = "identity"

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                               nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity)
DROPOUT_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
                 torch.dropout, torch.nn.functional.dropout}
DROPOUT_METHODS = {"dropout"}
# Class names of wrappers that are the identity at init / in eval, when they survive as leaf modules.
IDENTITY_CLASS_NAMES = {"DropPath", "StochasticDepth", "DropBlock2d", "DropBlock", "Identity", "LayerScale",
                        "LayerScale2d", "DropPathScale"}


def _extra_identity_funcs() -> frozenset[object]:
    """torchvision's and timm's drop-path functions, of the libraries imported so far (``graph.loaded``)."""
    return _drop_funcs(loaded("torchvision"), loaded("timm"))


@functools.cache
def _drop_funcs(torchvision: bool, timm: bool) -> frozenset[object]:
    funcs: set[object] = set()
    if torchvision:
        try:
            from torchvision.ops import stochastic_depth

            funcs.add(stochastic_depth)
        except Exception:  # pragma: no cover
            pass
    if timm:
        try:
            from timm.layers import drop_block_2d, drop_block_fast_2d, drop_path

            funcs |= {drop_path, drop_block_2d, drop_block_fast_2d}
        except Exception:  # pragma: no cover
            pass
    return frozenset(funcs)


def _first_input(n: fx.Node) -> fx.Node | None:
    a = n.args[0] if n.args else n.kwargs.get("input", n.kwargs.get("x"))
    return a if isinstance(a, fx.Node) else None


def run(gm: fx.GraphModule, ctx: PassContext) -> tuple[fx.GraphModule, list[Change]]:
    changes: list[Change] = []
    dep = input_dependent(gm)
    for n in list(gm.graph.nodes):
        what = _identity_kind(gm, n)
        if what is not None:
            _drop_identity(n, what, changes)
            continue
        # layer-scale: x * gamma where gamma depends on parameters only (no input)
        if is_mul(n) and n.op in ("call_function", "call_method"):
            _drop_layer_scale(gm, n, dep, changes)
    return finish(gm), changes


def _identity_kind(gm: fx.GraphModule, n: fx.Node) -> str | None:
    """What ``n`` calls when it is a dropout / drop-path / identity wrapper (module, function or method), else None."""
    if n.op == "call_module":
        m = node_module(gm, n)
        if isinstance(m, DROPOUT_TYPES) or type(m).__name__ in IDENTITY_CLASS_NAMES:
            return type(m).__name__
    elif n.op == "call_function" and (n.target in DROPOUT_FUNCS or n.target in _extra_identity_funcs()):
        return getattr(n.target, "__name__", str(n.target))
    elif n.op == "call_method" and n.target in DROPOUT_METHODS:
        return f".{n.target}"
    return None


def _drop_identity(n: fx.Node, what: str, changes: list[Change]) -> None:
    """``n`` -> its input; reported unless it was a plain ``nn.Identity``."""
    src = _first_input(n)
    if src is None:
        return
    kind_detail = "drop-path / stochastic depth" if "path" in what.lower() or "depth" in what.lower() else (
        "identity wrapper" if "Identity" in what else "dropout")
    replace_with(n, src)
    if what == "Identity":
        return  # exactly the identity: removed without a report line
    dropped = [str(n.target) if n.op == "call_module" else n.name]
    record(changes, NAME, n, "identity", kept=src.name, dropped=dropped,
           detail=f"{what} -> identity ({kind_detail})")


def _drop_layer_scale(gm: fx.GraphModule, n: fx.Node, dep: set[fx.Node], changes: list[Change]) -> None:
    """``x * gamma`` with ``gamma`` computed from parameters alone -> ``x``."""
    tensors = [a for a in n.args[:2] if isinstance(a, fx.Node)]
    if len(tensors) != 2:
        return
    ins = data_inputs(n, dep)
    const = [a for a in tensors if a not in dep]
    if len(ins) == 1 and len(const) == 1 and _is_param_derived(gm, const[0]):
        replace_with(n, ins[0])
        record(changes, NAME, n, "identity", kept=ins[0].name, dropped=[const[0].name],
               detail="layer-scale multiply by a learnt per-channel constant -> identity")


def _is_param_derived(gm: fx.GraphModule, n: fx.Node) -> bool:
    """``n`` is computed from get_attr parameters only (e.g. gamma.reshape(1, -1, 1, 1)), per channel."""
    stack, seen, found = [n], set(), False
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur.op == "get_attr":
            found = True
            continue
        if cur.op == "placeholder":
            return False
        stack.extend(cur.all_input_nodes)
    return found
