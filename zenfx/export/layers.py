"""Which modules the exporter keeps as layers, and how each one is written as constructor code.

An exported file must build every layer itself (``nn.Conv2d(64, 128, 3, padding=1, bias=False)``),
so a layer is kept only when its constructor call can be written from the module's attributes and
that call provably rebuilds the same layer: the written call is evaluated on the meta device and
its attributes and tensor shapes are compared with the original. A module that fails this check
is not kept as a layer; the tracer inlines its forward instead, and its parameters become loose
tensors of the exported class.

Three families need more than a constructor call:

* timm's norm-with-activation layers (``BatchNormAct2d``, ``GroupNormAct``, ...): written as the
  plain torch norm (same state-dict keys) followed by their ``drop`` and ``act`` children, which is
  exactly what their forward computes.
* drop-path / stochastic depth (timm ``DropPath``, torchvision ``StochasticDepth``) and timm's
  ``Conv2dSame``: no torch equivalent exists, so a small class (``SNIPPETS``) is written into the
  exported file; it draws random numbers with the same calls in the same order as the original,
  so a seeded training step matches.
* a subclass of a torch layer that changes nothing but its constructor is written as the torch
  base class.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UsageError

# --------------------------------------------------------------------------- snippets

SNIPPETS: dict[str, str] = {
    "DropPath": '''
class DropPath(nn.Module):
    """Stochastic depth per sample: in training, zero a whole residual branch for some samples."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask
''',
    "StochasticDepth": '''
class StochasticDepth(nn.Module):
    """Stochastic depth: in training, zero the branch per sample ("row") or for the batch ("batch")."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        mask = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask
''',
    "Conv2dSame": '''
class Conv2dSame(nn.Conv2d):
    """A conv with TensorFlow's "SAME" padding, computed from the input size at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        pad_h = max((math.ceil(ih / self.stride[0]) - 1) * self.stride[0] + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((math.ceil(iw / self.stride[1]) - 1) * self.stride[1] + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
''',
    "StdConv2d": '''
class StdConv2d(nn.Conv2d):
    """A conv whose weight is standardised per output channel (zero mean, unit variance) at every call."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, eps: float = 1e-6) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
''',
    "ScaledStdConv2d": '''
class ScaledStdConv2d(nn.Conv2d):
    """A conv whose standardised weight is scaled by a learnt per-channel gain times ``scale`` (NFNets)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, scale: float = 1.0, eps: float = 1e-6,
                 gain_init: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.scale = scale
        self.eps = eps
        self.gain_init = gain_init
        self.gain = nn.Parameter(torch.full((out_channels, 1, 1, 1), gain_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
                         eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
''',
}

# Classes (module path + name) written as a snippet, and the attribute that carries each argument.
_SNIPPET_CLASSES: dict[str, str] = {
    "timm.layers.drop.DropPath": "DropPath",
    "torchvision.ops.stochastic_depth.StochasticDepth": "StochasticDepth",
    "timm.layers.conv2d_same.Conv2dSame": "Conv2dSame",
    "timm.layers.std_conv.StdConv2d": "StdConv2d",
    "timm.layers.std_conv.ScaledStdConv2d": "ScaledStdConv2d",
}

# timm's norm + drop + act layers, written as the torch norm then the two children.
_NORM_ACT_CLASSES: dict[str, type[nn.Module]] = {
    "timm.layers.norm_act.BatchNormAct2d": nn.BatchNorm2d,
    "timm.layers.norm_act.GroupNormAct": nn.GroupNorm,
    "timm.layers.norm_act.GroupNorm1Act": nn.GroupNorm,
    "timm.layers.norm_act.LayerNormAct": nn.LayerNorm,
}

# Subclasses whose forward computes exactly what the torch base computes (timm's Linear only adds
# a TorchScript cast).
_SAME_AS_BASE: set[str] = {"timm.layers.linear.Linear"}

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)

# Own-dict entries a subclass may add without changing what the layer computes.
_HARMLESS_MEMBERS = {"__init__", "__module__", "__doc__", "__qualname__", "__annotations__",
                     "__constants__", "__firstlineno__", "__static_attributes__", "__dict__",
                     "__weakref__", "__parameters__", "__orig_bases__", "reset_parameters", "extra_repr",
                     "__repr__"}

# Tuple arguments that torch expands from an int, written as the int when all entries agree.
_PAIR_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_padding"}


class CannotWrite(Exception):
    """A module or value that has no faithful torch-only spelling."""


class NotExportableError(UsageError):
    """Some part of the model has no torch-only spelling; the message names it (exit 2)."""


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class LayerSpec:
    """How one kept module appears in the exported file."""

    module: nn.Module
    kind: str  # "torch" | "norm_act" | "snippet"
    code: str  # the constructor call, e.g. "nn.Conv2d(3, 64, kernel_size=7, ...)"
    snippet: str | None = None
    children: tuple[str, ...] = ()  # norm_act: the child modules called after the norm
    own_only: bool = False  # the state dict holds only the module's own tensors (not its children's)
    attr: str = ""  # assigned by the code generator
    notes: list[str] = field(default_factory=list)


def format_value(v: Any) -> str:
    """A Python expression for a constant, or CannotWrite."""
    if v is None or isinstance(v, (bool, int, str)):
        return repr(v)
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, torch.Size):
        v = tuple(v)
    if type(v) in (tuple, list, dict):
        return _format_container(v)
    if isinstance(v, (torch.dtype, torch.memory_format, torch.layout)):
        return str(v)
    if isinstance(v, torch.device):
        return f"torch.device({str(v)!r})"
    if v is Ellipsis:
        return "..."
    if isinstance(v, slice):
        return f"slice({format_value(v.start)}, {format_value(v.stop)}, {format_value(v.step)})"
    raise CannotWrite(f"constant of type {type(v).__name__} ({v!r:.60})")


def _format_float(v: float) -> str:
    if math.isnan(v):
        return "float('nan')"
    if math.isinf(v):
        return "float('inf')" if v > 0 else "-float('inf')"
    return repr(v)


def _format_container(v: Any) -> str:
    """A tuple, list or str-keyed dict of constants."""
    if type(v) is tuple:
        inner = ", ".join(format_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if type(v) is list:
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if all(isinstance(k, str) for k in v):
        return "{" + ", ".join(f"{k!r}: {format_value(x)}" for k, x in v.items()) + "}"
    raise CannotWrite(f"constant of type {type(v).__name__} ({v!r:.60})")


def _collapse(name: str, v: Any) -> Any:
    if name in _PAIR_ARGS and type(v) is tuple and v and all(type(x) is int and x == v[0] for x in v):
        return v[0]
    return v


def _arg_value(m: nn.Module, name: str) -> tuple[bool, Any]:
    """The value of constructor argument ``name`` read back from the built module."""
    if name == "bias":
        if hasattr(m, "in_proj_bias"):  # MultiheadAttention
            return True, m.in_proj_bias is not None
        bias = getattr(m, "bias", "<missing>")
        if bias is None or isinstance(bias, torch.Tensor):
            return True, bias is not None
    if name == "add_bias_kv" and hasattr(m, "bias_k"):
        return True, m.bias_k is not None
    if name in ("kdim", "vdim") and getattr(m, name, None) == getattr(m, "embed_dim", None):
        return True, None  # MultiheadAttention stores embed_dim for "same as embed_dim"
    if name in ("device", "dtype", "_weight", "_freeze", "init"):
        return False, None
    if name in vars(m) or hasattr(type(m), name) and not callable(getattr(type(m), name)):
        value = getattr(m, name)
        if isinstance(value, (torch.Tensor, nn.Module)):
            return False, None
        return True, value
    return False, None


def _ctor_call(m: nn.Module, cls: type, cls_expr: str) -> str:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as exc:
        raise CannotWrite(f"{cls.__name__} has no readable constructor signature") from exc
    pos: list[str] = []
    kw: list[str] = []
    for name, p in list(sig.parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        found, value = _arg_value(m, name)
        if not found:
            if p.default is p.empty:
                raise CannotWrite(f"{cls.__name__}: argument '{name}' is not readable from the module")
            continue
        value = _collapse(name, value)
        if p.default is not p.empty:
            try:
                same = type(value) is type(p.default) and value == p.default or (value is None and p.default is None)
            except Exception:
                same = False
            if same:
                continue
        text = format_value(value)
        if p.default is p.empty and p.kind != p.KEYWORD_ONLY and not kw:
            pos.append(text)
        else:
            kw.append(f"{name}={text}")
    return f"{cls_expr}({', '.join(pos + kw)})"


def _normalise(v: Any) -> Any:
    if type(v) is tuple and v and all(type(x) is int and x == v[0] for x in v):
        return v[0]
    if type(v) is list:
        return tuple(_normalise(x) for x in v)
    return v


def _simple_attrs(m: nn.Module) -> dict[str, Any]:
    out = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k == "training":
            continue
        if v is None or isinstance(v, (bool, int, float, str, tuple, list, torch.dtype)):
            out[k] = _normalise(v)
    return out


def _own_tensors(m: nn.Module, recurse: bool) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    sd = m.state_dict(keep_vars=True) if recurse else {
        **{k: v for k, v in m._parameters.items() if v is not None},
        **{k: v for k, v in m._buffers.items() if v is not None and k not in m._non_persistent_buffers_set},
    }
    return {k: (tuple(v.shape), v.dtype) for k, v in sd.items()}


_REBUILT: dict[str, nn.Module] = {}


def _rebuild(code: str, namespace: dict[str, Any]) -> nn.Module:
    """The layer a constructor call builds, on meta (cached: a network repeats the same few layers)."""
    if code not in _REBUILT:
        if len(_REBUILT) > 4096:
            _REBUILT.clear()
        try:
            with torch.device("meta"):
                _REBUILT[code] = eval(code, dict(namespace))  # noqa: S307 - our own generated expression
        except Exception as exc:
            raise CannotWrite(f"{code} does not build: {type(exc).__name__}: {exc}") from None
    return _REBUILT[code]


def _verify(m: nn.Module, code: str, namespace: dict[str, Any], own_only: bool) -> None:
    """Evaluate the constructor call on meta and compare it with the original layer."""
    rebuilt = _rebuild(code, namespace)
    want, got = _simple_attrs(m), _simple_attrs(rebuilt)
    # Only what the rebuilt layer has: the forward of a torch class reads nothing else, and models
    # hang notes on layers (torchvision's Inception sets ``fc.stddev`` for its initialiser).
    for k in sorted(got):
        if want.get(k, "<missing>") != got.get(k, "<missing>"):
            raise CannotWrite(f"{code} differs from the original in '{k}': {want.get(k)!r} vs {got.get(k)!r}")
    if _own_tensors(m, not own_only) != _own_tensors(rebuilt, not own_only):
        raise CannotWrite(f"{code} gives different parameter shapes than the original")
    if _param_names(m, own_only) != _param_names(rebuilt, own_only):
        raise CannotWrite(f"{code} registers different parameters than the original")


def _param_names(m: nn.Module, own_only: bool) -> set[str]:
    items = m._parameters.items() if own_only else m.named_parameters()
    return {k for k, p in items if p is not None}


def _torch_base(cls: type) -> type | None:
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("torch.nn.modules") and base is not nn.Module:
            return base
    return None


def _is_torch_layer(cls: type) -> bool:
    return cls.__module__.startswith("torch.nn.modules") and not issubclass(cls, _CONTAINERS) and cls is not nn.Module


def _plain_subclass_base(cls: type) -> type | None:
    """The torch layer ``cls`` derives from, when ``cls`` changes nothing but its constructor."""
    base = _torch_base(cls)
    if base is None or not _is_torch_layer(base):
        return None
    if qualname(cls) in _SAME_AS_BASE:
        return base
    own = [k for k in cls.__mro__ if k is not object and not k.__module__.startswith("torch.")]
    return base if all(set(vars(k)) <= _HARMLESS_MEMBERS for k in own) else None


def _verify_namespace() -> dict[str, Any]:
    import math as _math

    import torch.nn.functional as F

    ns: dict[str, Any] = {"torch": torch, "nn": nn, "F": F, "math": _math}
    for name, src in SNIPPETS.items():
        exec(compile(src, f"<zenfx snippet {name}>", "exec"), ns)  # noqa: S102 - our own source
    return ns


_NS: dict[str, Any] | None = None


def _namespace() -> dict[str, Any]:
    global _NS
    if _NS is None:
        _NS = _verify_namespace()
    return _NS


def layer_spec(m: nn.Module) -> LayerSpec | None:
    """The way ``m`` is written as one layer, or None when its forward should be inlined."""
    cls = type(m)
    name = qualname(cls)
    ns = _namespace()
    if name in _SNIPPET_CLASSES:
        snippet = _SNIPPET_CLASSES[name]
        try:
            code = _ctor_call(m, ns[snippet], snippet)
            _verify(m, code, ns, own_only=False)
        except CannotWrite:
            return None
        return LayerSpec(m, "snippet", code, snippet=snippet)
    if name in _NORM_ACT_CLASSES:
        base = _NORM_ACT_CLASSES[name]
        try:
            code = _ctor_call(m, base, f"nn.{base.__name__}")
            _verify(m, code, ns, own_only=True)
        except CannotWrite:
            return None
        children = tuple(c for c in ("drop", "act") if isinstance(getattr(m, c, None), nn.Module))
        return LayerSpec(m, "norm_act", code, children=children, own_only=True)
    base = cls if _is_torch_layer(cls) else _plain_subclass_base(cls)
    if base is None or not hasattr(nn, base.__name__) or getattr(nn, base.__name__) is not base:
        return None
    try:
        code = _ctor_call(m, base, f"nn.{base.__name__}")
        _verify(m, code, ns, own_only=False)
    except CannotWrite:
        return None
    return LayerSpec(m, "torch", code)
