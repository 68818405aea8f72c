"""The one preparation path: load -> trace -> (reshape) -> convert, shared by every command.

``score``, ``report``, ``convert``, ``inspect``, the audit and the search all start here, so a model
is resolved and traced once and every later step reuses the graph:

* :func:`load_and_trace` takes anything a user may hand over (a spec string, an ``nn.Module``, a
  zenfx-traced ``GraphModule``, a :class:`TracedModel`) and returns a :class:`TracedModel` whose
  shapes are at the input size and batch size asked for. What was already traced is not traced
  again: at another size it is re-shaped on a private copy (:func:`reshape`), never in place;
* :func:`input_size_of` is the one reading of ``input_size`` / ``resolution`` (``"3,32,32"`` and
  ``(3, 32, 32)`` alike);
* :func:`convert` runs the VCNN passes on a :class:`TracedModel`; :func:`to_vcnn` and
  :func:`convert_model` do load -> trace -> convert for anything a user hands over (the VCNN
  passes themselves, in ``zenfx.vcnn``, only ever see a traced graph).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

from .devices import module_device
from .errors import NotTraceableError, OptionError
from .graph import graph_batch, summarize
from .loading import InputSize, LoadedModel, resolve_model
from .tracing import propagate_shapes, trace

if TYPE_CHECKING:
    from .vcnn.report import VCNNResult

DEFAULT_INPUT_SIZE: InputSize = (3, 224, 224)

ModelLike = Any  # str | nn.Module | fx.GraphModule | TracedModel


@dataclass
class TracedModel:
    """A resolved model, its shape-annotated graph and the input size it was traced at."""

    loaded: LoadedModel
    gm: fx.GraphModule
    input_size: InputSize
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "load", "trace" (or a re-shape)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def tracer(self) -> str:
        return str(self.gm.meta.get("zenfx_tracer", "unknown"))

    @property
    def batch_size(self) -> int:
        """The batch size the graph's shapes were propagated at."""
        return graph_batch(self.gm) or 1


# --------------------------------------------------------------------------- options


def input_size_of(input_size: str | Sequence[int] | None, resolution: int | None = None,
                  default: Sequence[int] = DEFAULT_INPUT_SIZE) -> InputSize:
    """``input_size`` (``(C, H, W)`` or ``"C,H,W"`` / ``"CxHxW"``) wins over ``resolution`` (``(C, R, R)``
    with ``default``'s channels); with neither, ``default``."""
    if input_size is not None:
        if isinstance(input_size, str):
            parts = [p.strip() for p in input_size.replace("x", ",").split(",") if p.strip()]
        elif isinstance(input_size, (int, float)):
            parts = [input_size]  # type: ignore[list-item]
        else:
            parts = list(input_size)
        try:
            dims = tuple(int(p) for p in parts)
            exact = all(float(p) == d for p, d in zip(parts, dims, strict=True))
        except (TypeError, ValueError):
            dims, exact = (), False
        if len(dims) != 3 or not exact or min(dims) <= 0:
            raise OptionError("input_size", f"input_size {input_size!r} must be three positive integers C,H,W "
                                            "(e.g. (3, 224, 224) or '3,224,224')")
        return dims  # type: ignore[return-value]
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise OptionError("resolution", f"resolution must be a positive integer, got {resolution!r}")
        return (int(default[0]), resolution, resolution)
    return tuple(int(d) for d in default)  # type: ignore[return-value]


def whole_number(option: str, value: Any, minimum: int) -> int:
    """``value`` as an int, refused (OptionError naming ``option``) unless it is a whole number >= ``minimum``."""
    try:
        whole = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError):
        whole = False
    if not whole or value < minimum:
        raise OptionError(option, f"{option} must be at least {minimum}, got {value!r}")
    return int(value)


def check_batch_size(batch_size: int) -> int:
    return whole_number("batch_size", batch_size, 1)


# --------------------------------------------------------------------------- load and trace


def _graph_input_size(gm: fx.GraphModule) -> InputSize | None:
    size = gm.meta.get("zenfx_input_size")
    return tuple(int(d) for d in size) if size else None  # type: ignore[return-value]


def _wrap_graph(gm: fx.GraphModule, input_size: InputSize | None, batch_size: int) -> TracedModel:
    """A GraphModule zenfx already traced: kept as it is (re-shaped on a copy when the size differs)."""
    name = type(gm).__name__
    own = _graph_input_size(gm) or DEFAULT_INPUT_SIZE
    loaded = LoadedModel(gm, name, "module", name, own, {}, str(module_device(gm)))
    return reshape(TracedModel(loaded, gm, own), input_size or own, batch_size)


def load_and_trace(spec: ModelLike, kwargs: dict[str, Any] | None = None,
                   input_size: str | Sequence[int] | None = None, device: str | None = None,
                   batch_size: int = 1, *, resolution: int | None = None) -> TracedModel:
    """Resolve ``spec`` (optionally on the meta device), trace it and annotate shapes at
    ``(batch_size, *input_size)``.

    ``spec`` may also be a :class:`TracedModel` or a GraphModule zenfx traced: neither is resolved
    or traced again (``kwargs`` must then be unset; it stays on its own device); at another size or
    batch it is re-shaped on a copy. ``input_size=None`` (and no ``resolution``) means the model's own default
    (timm's config, torchvision's crop size, else 3x224x224; for a traced graph, its own size).
    """
    batch_size = check_batch_size(batch_size)
    if isinstance(spec, TracedModel) or (isinstance(spec, fx.GraphModule) and "zenfx_tracer" in spec.meta):
        if kwargs:
            raise OptionError("kwargs", "kwargs (constructor arguments) were given with an already built model")
        if isinstance(spec, TracedModel):
            size = input_size_of(input_size, resolution, spec.input_size)
            return reshape(spec, size, batch_size)
        own = _graph_input_size(spec) or DEFAULT_INPUT_SIZE
        return _wrap_graph(spec, input_size_of(input_size, resolution, own), batch_size)
    t0 = time.perf_counter()
    loaded = resolve_model(spec, kwargs, device=device)
    tm = trace_loaded(loaded, input_size, batch_size, resolution=resolution)
    tm.timings["load"] = time.perf_counter() - t0 - tm.timings["trace"]
    return tm


def trace_loaded(loaded: LoadedModel, input_size: str | Sequence[int] | None = None, batch_size: int = 1, *,
                 resolution: int | None = None) -> TracedModel:
    """The trace step alone, for a caller that keeps the built model when tracing fails (``report``
    still counts params and MACs of an untraceable model without building it twice)."""
    size = input_size_of(input_size, resolution, loaded.default_input_size)
    t = time.perf_counter()
    gm = trace(loaded.module, size, batch_size=check_batch_size(batch_size))
    return TracedModel(loaded, gm, size, {"trace": time.perf_counter() - t})


def reshape(tm: TracedModel, input_size: Sequence[int] | None = None, batch_size: int | None = None) -> TracedModel:
    """``tm`` with shapes at another input size and/or batch size, on a private copy of the graph (the
    caller's keeps its own shapes); ``tm`` itself when nothing changes. No re-trace."""
    size: InputSize = tuple(int(s) for s in (input_size or tm.input_size))  # type: ignore[assignment]
    batch = int(batch_size) if batch_size is not None else tm.batch_size
    if size == tuple(tm.input_size) and batch == tm.batch_size and _graph_input_size(tm.gm) == size:
        return tm
    t0 = time.perf_counter()
    gm = copy.deepcopy(tm.gm)
    gm.meta.update({k: v for k, v in tm.gm.meta.items() if k not in gm.meta})
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            propagate_shapes(gm, size, batch)
    finally:
        gm.train(was_training)
    return TracedModel(tm.loaded, gm, size, {"trace": time.perf_counter() - t0})


# --------------------------------------------------------------------------- convert


def convert(tm: TracedModel, *, keep_norms: bool = False, strict: bool = True) -> VCNNResult:
    """The VCNN form of a traced model (strict: a non-convertible model raises NotConvertibleError)."""
    from .vcnn.convert import convert_traced

    return convert_traced(tm.gm, tm.input_size, name=tm.name, keep_norms=keep_norms, strict=strict,
                          batch_size=tm.batch_size)


def to_vcnn(model_or_gm: Any, input_size: Sequence[int] | str | None = None, *, keep_norms: bool = False,
            strict: bool = True, batch_size: int = 1, name: str | None = None,
            kwargs: dict[str, Any] | None = None, resolution: int | None = None,
            device: str | None = None) -> VCNNResult:
    """Rewrite a model into vanilla-CNN form on a private copy; the caller's model is never touched.

    ``model_or_gm``: a spec string (with constructor ``kwargs``, built on ``device``; ``"meta"``
    costs no memory), an ``nn.Module``, a zenfx-traced ``GraphModule`` or a ``TracedModel`` (traced
    once, by ``zenfx.pipeline.load_and_trace``; what is traced already is not traced again).
    Returns a :class:`VCNNResult` whose ``gm`` outputs the pre-GAP feature map. With ``strict=True``
    a not-convertible model raises :class:`NotConvertibleError` (an untraceable one
    :class:`NotTraceableError`); with ``strict=False`` the result carries the verdict and reasons.
    """
    from .vcnn.convert import convert_traced
    from .vcnn.report import NOT_CONVERTIBLE, VCNNResult

    try:
        tm = load_and_trace(model_or_gm, kwargs, input_size, device=device, batch_size=batch_size,
                            resolution=resolution)
    except NotTraceableError as exc:
        if strict:
            raise
        fallback = model_or_gm if isinstance(model_or_gm, str) else type(model_or_gm).__name__
        return VCNNResult(None, verdict=NOT_CONVERTIBLE, reasons=[f"untraceable: {exc}"], name=name or fallback)
    return convert_traced(tm.gm, tm.input_size, name=name or tm.name, keep_norms=keep_norms, strict=strict,
                          batch_size=batch_size)


def convert_model(spec: ModelLike, kwargs: dict[str, Any] | None = None,
                  input_size: Sequence[int] | str | None = None, *, device: str | None = None,
                  keep_norms: bool = False, strict: bool = True, resolution: int | None = None) -> VCNNResult:
    """Resolve a spec (as every command does), trace it and convert it: what ``zenfx convert`` runs
    (``to_vcnn`` with the spec's arguments first)."""
    return to_vcnn(spec, input_size, kwargs=kwargs, device=device, keep_norms=keep_norms, strict=strict,
                   resolution=resolution)


def inspect_model(spec: ModelLike, kwargs: dict[str, Any] | None = None,
                  input_size: str | Sequence[int] | None = None, *, resolution: int | None = None) -> dict[str, Any]:
    """Structure of a model's graph: what ``zenfx inspect`` prints. Built on meta: costs no memory."""
    tm = load_and_trace(spec, kwargs, input_size, device="meta" if isinstance(spec, str) else None,
                        resolution=resolution)
    info = summarize(tm.gm)
    info["params"] = sum(p.numel() for p in tm.loaded.module.parameters())
    return {"model": tm.name, "source": tm.loaded.source, **info}


__all__ = ["DEFAULT_INPUT_SIZE", "TracedModel", "check_batch_size", "convert", "convert_model", "input_size_of",
           "inspect_model", "load_and_trace", "reshape", "to_vcnn", "trace_loaded", "whole_number"]
