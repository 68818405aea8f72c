"""torchvision and timm models by registry name, and the input size each expects."""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from torch import nn

from ..errors import UnknownModelError
from .construct import LoadedModel, build_module
from .options import DEFAULT_INPUT_SIZE, InputSize


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    """Classification models only: the family zenfx scores and audits."""
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    import timm

    return tuple(sorted(timm.list_models()))


def suggest(name: str, candidates: list[str], n: int = 5) -> list[str]:
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)


def unknown(name: str, where: str, candidates: list[str]) -> UnknownModelError:
    close = suggest(name, candidates)
    hint = f"did you mean {', '.join(close)}?" if close else None
    return UnknownModelError(f"unknown model '{name}' in {where}", hint=hint)


def torchvision_input_size(name: str, model: nn.Module | None = None) -> InputSize:
    """The evaluation crop of the model's default weights, unless the built model fixes its own
    size: torchvision's ViTs are built for ``image_size`` (224 by default) while their DEFAULT
    weights may be a larger fine-tune (vit_h_14: 518), and a ViT only runs at its built size."""
    import torchvision.models as tvm

    built = getattr(model, "image_size", None)
    if isinstance(built, int) and built > 0:
        return (3, built, built)
    try:
        weights = tvm.get_model_weights(name)
        default = weights.DEFAULT  # type: ignore[attr-defined]
        crop = default.transforms().crop_size
        side = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
        return (3, side, side)
    except Exception:
        return DEFAULT_INPUT_SIZE


def timm_input_size(model: nn.Module) -> InputSize:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if size and len(size) == 3:
        return tuple(int(s) for s in size)  # type: ignore[return-value]
    return DEFAULT_INPUT_SIZE


def load_torchvision(name: str, kwargs: dict[str, Any], device: str | None, spec: str) -> LoadedModel:
    import torchvision.models as tvm

    if name not in torchvision_names():
        raise unknown(name, "torchvision", list(torchvision_names()))
    kw = dict(kwargs)
    kw.setdefault("weights", None)
    model = build_module(lambda **k: tvm.get_model(name, **k), kw, device, what=spec)
    return LoadedModel(model, name, "torchvision", spec, torchvision_input_size(name, model), kwargs)


def load_timm(name: str, kwargs: dict[str, Any], device: str | None, spec: str) -> LoadedModel:
    import timm

    if not timm.is_model(name):
        raise unknown(name, "timm", list(timm_names()))
    kw = dict(kwargs)
    kw["pretrained"] = False
    model = build_module(lambda **k: timm.create_model(name, **k), kw, device, what=spec)
    return LoadedModel(model, name, "timm", spec, timm_input_size(model), kwargs)


def guess_input_size(model: nn.Module, name: str) -> InputSize:
    if getattr(model, "pretrained_cfg", None):
        return timm_input_size(model)
    return DEFAULT_INPUT_SIZE
