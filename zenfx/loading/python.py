"""A constructor, class or instance named by import path (``pkg.mod.attr`` / ``pkg.mod:attr``)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from ..errors import UnknownModelError
from .construct import LoadedModel, build_module
from .hub import guess_input_size, torchvision_input_size, torchvision_names, unknown
from .options import DEFAULT_INPUT_SIZE


def _import_attr(module_path: str, attr_path: str) -> Any:
    try:
        obj: Any = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise UnknownModelError(f"cannot import module '{module_path}': {exc}") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise unknown(part, module_path, public)
        obj = getattr(obj, part)
    return obj


def load_python(spec: str, kwargs: dict[str, Any], device: str | None) -> LoadedModel:
    """``pkg.mod:attr`` or ``pkg.mod.attr``: the longest importable prefix is the module."""
    if ":" in spec:
        module_path, attr_path = spec.split(":", 1)
        obj = _import_attr(module_path, attr_path)
    else:
        parts = spec.split(".")
        obj = None
        for cut in range(len(parts) - 1, 0, -1):
            module_path = ".".join(parts[:cut])
            try:
                importlib.import_module(module_path)
            except ModuleNotFoundError:
                continue
            obj = _import_attr(module_path, ".".join(parts[cut:]))
            break
        if obj is None:
            raise UnknownModelError(f"cannot import any module prefix of '{spec}'")
        attr_path = parts[-1]
    name = attr_path.split(".")[-1]
    module_name = getattr(obj, "__module__", "") or ""
    kw = dict(kwargs)
    torchvision_ctor = module_name.startswith("torchvision.models") and inspect.isfunction(obj)
    if torchvision_ctor:
        kw.setdefault("weights", None)
    elif module_name.startswith("timm.models") and inspect.isfunction(obj):
        kw["pretrained"] = False
    model = build_module(obj, kw, device, what=spec)
    if torchvision_ctor:
        default = torchvision_input_size(name, model) if name in torchvision_names() else DEFAULT_INPUT_SIZE
    else:
        default = guess_input_size(model, name)
    source = "module" if isinstance(obj, nn.Module) else (
        "torchvision" if module_name.startswith("torchvision.") else
        "timm" if module_name.startswith("timm.") else "python")
    return LoadedModel(model, name, source, spec, default, kwargs)
