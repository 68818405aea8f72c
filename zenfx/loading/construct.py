"""Calling a model's constructor: on the meta device when asked (no memory), with the user's
exceptions turned into one-line usage errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UsageError, ZenfxError
from .options import DEFAULT_INPUT_SIZE, InputSize


@dataclass
class LoadedModel:
    """A built model plus what we learnt about it while resolving the spec."""

    module: nn.Module
    name: str
    source: str  # "torchvision", "timm", "python", "file" or "module"
    spec: str
    default_input_size: InputSize = DEFAULT_INPUT_SIZE
    kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


@contextlib.contextmanager
def _on_device(device: str | torch.device | None) -> Iterator[None]:
    if device is None:
        yield
    else:
        with torch.device(device):
            yield


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Parameters and buffers move to the meta device as they are registered.

    The fallback for meta builds that ``with torch.device("meta")`` breaks: RegNet, for one,
    computes its stage widths with torch ops (``.tolist()``) at construction time, which fail on
    meta tensors. Here those ops run on the CPU while every weight still ends on meta, so the
    layers' own initialisers run on meta tensors and cost nothing.
    """
    reg_p, reg_b = nn.Module.register_parameter, nn.Module.register_buffer

    def register_parameter(self: nn.Module, name: str, param: Any) -> None:
        reg_p(self, name, param)
        if param is not None:
            self._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def register_buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        reg_b(self, name, tensor.to("meta") if isinstance(tensor, torch.Tensor) else tensor, persistent)

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = reg_p  # type: ignore[method-assign]
        nn.Module.register_buffer = reg_b  # type: ignore[method-assign]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def build_module(ctor: Any, kwargs: dict[str, Any], device: str | None, *, what: str | None = None) -> nn.Module:
    """Call a constructor on ``device`` (meta for a memory-free build), falling back to CPU.

    Whatever the constructor raises (a TypeError for a wrong argument, a ValueError or RuntimeError
    for a bad value such as a negative width) is the user's usage error: one line naming ``what``
    (the spec) and the exception, exit 2, never a traceback. ZenfxErrors pass through unchanged.
    """
    if isinstance(ctor, nn.Module):
        if kwargs:
            raise UsageError("constructor arguments were given, but the spec names a module instance")
        return ctor
    if not callable(ctor):
        raise UsageError(f"'{ctor!r}' is neither an nn.Module, a class nor a callable")
    try:
        model = _call_with_fallback(ctor, kwargs, device)
    except ZenfxError:
        raise
    except Exception as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("weights", "pretrained"))
        given = f" with {args}" if args else ""
        raise UsageError(f"cannot build {what or 'model'}{given}: {_first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"the constructor returned {type(model).__name__}, not an nn.Module")
    return model


def _call_with_fallback(ctor: Any, kwargs: dict[str, Any], device: str | None) -> Any:
    """Build on ``device``; a build that fails there is retried without weights on meta (for meta)
    and then on the CPU, whose exception (the user's own, not a meta artefact) is the one raised."""
    try:
        with _on_device(device):
            return ctor(**kwargs)
    except Exception:
        if device in (None, "cpu"):
            raise
    if str(device) == "meta":
        try:
            with empty_weights():
                return ctor(**kwargs)
        except Exception:
            pass
    with _on_device("cpu"):
        return ctor(**kwargs)
