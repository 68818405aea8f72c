"""Metadata that edits make stale, fixed after a replay.

- timm models carry ``num_features`` (the classifier's input width), ``head_hidden_size`` and
  ``feature_info`` (channels per feature stage): a width edit of the last group changes them.
- Drop-path / stochastic-depth rates are spread over the depth (timm: linspace(0, rate, blocks);
  torchvision: rate * i / blocks): after a depth edit the old spread has a copy at the wrong rate,
  so the rates are re-spread linearly, in module order, from the smallest to the largest rate
  the model had.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _drop_modules(model: nn.Module) -> list[tuple[nn.Module, str]]:
    out = []
    for m in model.modules():
        name = type(m).__name__
        if name == "DropPath" and hasattr(m, "drop_prob"):
            out.append((m, "drop_prob"))
        elif name == "StochasticDepth" and hasattr(m, "p"):
            out.append((m, "p"))
    return out


def respread_drop_path(model: nn.Module) -> None:
    mods = _drop_modules(model)
    rates = [float(getattr(m, attr) or 0.0) for m, attr in mods]
    if len(mods) < 2 or max(rates) == 0.0:
        return
    lo, hi = min(rates), max(rates)
    n = len(mods)
    for i, (m, attr) in enumerate(mods):
        setattr(m, attr, lo + (hi - lo) * i / (n - 1))


def _out_channels(m: nn.Module) -> int | None:
    last = None
    for sub in m.modules():
        if isinstance(sub, nn.modules.conv._ConvNd):
            last = sub.out_channels
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            last = sub.num_features
        elif isinstance(sub, nn.Linear):
            last = sub.out_features
    return last


def fix_metadata(model: nn.Module) -> None:
    """timm's ``num_features`` / ``head_hidden_size`` and ``feature_info`` channel counts, as the
    edited model now has them."""
    _fix_num_features(model)
    _fix_feature_info(model)


def _fix_num_features(model: nn.Module) -> None:
    get_classifier = getattr(model, "get_classifier", None)
    if not callable(get_classifier) or not hasattr(model, "num_features"):
        return
    try:
        head: Any = get_classifier()
    except Exception:
        head = None
    if isinstance(head, nn.Linear):
        width = head.in_features
        if getattr(model, "head_hidden_size", None) == model.num_features:
            model.head_hidden_size = width
        model.num_features = width


def _fix_feature_info(model: nn.Module) -> None:
    info = getattr(model, "feature_info", None)
    entries = getattr(info, "info", info)
    if not isinstance(entries, list):
        return
    for entry in entries:
        if isinstance(entry, dict) and "module" in entry and "num_chs" in entry:
            try:
                c = _out_channels(model.get_submodule(entry["module"]))
            except AttributeError:
                c = None
            if c:
                entry["num_chs"] = c
