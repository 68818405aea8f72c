"""``cost_report``: params, MACs, activation memory and (optionally) latency in one result object.

Flow: resolve and trace once (on the meta device unless something needs real weights: measured
or predicted latency, or the fvcore counter, which runs ``torch.jit.trace`` on real tensors),
optionally convert to VCNN form, then each counter reads the graph it was given. MACs are counted
at batch 1 and stated per image (``macs``) and per batch (``macs_batch``); FLOPs = 2 x MACs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..devices import dtype_name, parse_device, parse_dtype, require_runnable
from ..errors import NotTraceableError, OptionError
from ..graph import output_shape, tensor_shapes
from ..loading import resolve_model
from ..pipeline import TracedModel, check_batch_size, convert, input_size_of, load_and_trace, trace_loaded, whole_number
from .flops import COUNTERS, MacCount, count
from .latency import LatencyResult, measure_latency
from .memory import ActivationMemory, activation_memory, module_prefixes, node_module_path
from .params import ParamCount, count_params
from .predictor import LatencyPrediction, predict_latency

DEFAULT_DEPTH = 2


@dataclass
class LayerRow:
    path: str
    type: str
    depth: int
    params: int
    macs: int
    activation_bytes: int
    output_shape: Any = None
    predicted_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "path": self.path, "type": self.type, "depth": self.depth, "params": self.params,
            "macs": self.macs, "activation_bytes": self.activation_bytes,
            "output_shape": list(self.output_shape) if isinstance(self.output_shape, tuple) else self.output_shape,
        }
        if self.predicted_ms is not None:
            d["predicted_ms"] = self.predicted_ms
        return d


@dataclass
class CostReport:
    model: str
    source: str
    graph: str  # "original" or "vcnn"
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    params: ParamCount
    macs: MacCount  # counted at batch 1: per image
    memory: ActivationMemory | None
    latency: LatencyResult | None = None
    predicted: LatencyPrediction | None = None
    layers: list[LayerRow] = field(default_factory=list)
    depth: int | None = None
    notes: list[str] = field(default_factory=list)
    conversion: dict[str, Any] | None = None  # VCNN verdict and change counts with --vcnn

    @property
    def macs_per_image(self) -> int:
        return self.macs.total

    @property
    def macs_batch(self) -> int:
        return self.macs.total * self.batch_size

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "source": self.source,
            "graph": self.graph,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "params": self.params.to_dict(),
            "macs": self.macs.total,
            "gmacs": self.macs.total / 1e9,
            "flops": self.macs.flops,
            "gflops": self.macs.flops / 1e9,
            "macs_batch": self.macs_batch,
            "mac_counter": self.macs.counter,
            "macs_by_op": dict(self.macs.by_op),
            "activation_memory": self.memory.to_dict() if self.memory else None,
            "latency": self.latency.to_dict() if self.latency else None,
            "latency_predicted": self.predicted.to_dict() if self.predicted else None,
            "notes": list(self.notes),
        }
        if self.conversion is not None:
            d["vcnn"] = self.conversion
        if self.macs.unsupported_ops:
            d["mac_counter_unsupported_ops"] = dict(self.macs.unsupported_ops)
        if self.depth is not None:
            d["depth"] = self.depth
            d["layers"] = [r.to_dict() for r in self.layers]
        return d


# --------------------------------------------------------------------------- helpers


def _layer_rows(module: nn.Module, gm: fx.GraphModule | None, params: ParamCount, macs: MacCount,
                memory: ActivationMemory | None, predicted: LatencyPrediction | None, depth: int) -> list[LayerRow]:
    mem = memory.by_module() if memory else {}
    lat = predicted.by_module() if predicted else {}
    shapes: dict[str, Any] = {}
    if gm is not None:
        for n in gm.graph.nodes:
            if n.op in ("placeholder", "output", "get_attr") or not tensor_shapes(n):
                continue
            for key in module_prefixes(node_module_path(gm, n)):
                shapes[key] = n.meta.get("shape")
        shapes[""] = output_shape(gm)
    rows: list[LayerRow] = []
    total_row = LayerRow("", type(module).__name__, 0, params.total, macs.total, mem.get("", 0),
                         shapes.get("", None), lat[""] * 1e3 if "" in lat else None)
    rows.append(total_row)
    for path, sub in module.named_modules():
        if not path:
            continue
        d = path.count(".") + 1
        if d > depth:
            continue
        p, m, a = params.by_module.get(path, 0), macs.by_module.get(path, 0), mem.get(path, 0)
        if p == 0 and m == 0 and a == 0 and path not in lat:
            continue
        rows.append(LayerRow(path, type(sub).__name__, d, p, m, a, shapes.get(path),
                             lat[path] * 1e3 if path in lat else None))
    return rows


# --------------------------------------------------------------------------- public API


@dataclass
class _Target:
    """What the counters read: the module (original or VCNN) and its graph (None when untraceable)."""

    name: str
    source: str
    size: tuple[int, ...]
    module: nn.Module
    gm: fx.GraphModule | None
    notes: list[str] = field(default_factory=list)
    conversion: dict[str, Any] | None = None


def cost_report(model: str | nn.Module | TracedModel, kwargs: dict[str, Any] | None = None,
                input_size: str | Sequence[int] | None = None, batch_size: int = 1, *,
                dtype: str | torch.dtype = "float32", counter: str = "torch",
                depth: int | None = None, latency: bool = False, predict: bool = False,
                device: str = "cpu", threads: int | None = None, vcnn: bool = False,
                warmup: int = 10, min_run_time: float = 1.0, clock: str = "wall",
                resolution: int | None = None) -> CostReport:
    """Cost of ``model`` (a spec string, an ``nn.Module``, a traced GraphModule or a ``TracedModel``)
    at ``(batch_size, *input_size)``.

    * params (total, trainable) and MACs (per image; FLOPs = 2 x MACs) with ``counter`` ``torch``
      (FlopCounterMode on meta/fake tensors, the default) or ``fvcore`` (cross-check);
    * activation memory: peak live bytes over the graph's execution order at this batch size and
      dtype, and the largest single activation;
    * ``latency=True``: measured median/IQR with torch.utils.benchmark on ``device`` with ``threads``;
    * ``predict=True``: the per-operator latency predictor's estimate on the same setting;
    * ``clock="thread"``: time thread CPU time instead of wall time (CPU, 1 thread; shared machines);
    * ``depth=K``: a per-module breakdown down to depth K of the module hierarchy;
    * ``vcnn=True``: all of the above on the VCNN-converted graph instead of the original.

    An untraceable model still gets params, MACs and latency (not activation memory, which reads
    the graph), with a note. Raises ``ShapeError`` (exit 2) naming the layer when the model cannot
    run at that size.
    """
    dt, dev = _check_options(counter, batch_size, depth, dtype, device, latency or predict, threads, warmup,
                             min_run_time)
    need_real = latency or predict or counter == "fvcore"
    build_on = None if (need_real or not isinstance(model, str)) else "meta"
    t = _target(model, kwargs, input_size, resolution, batch_size, build_on, vcnn)
    params = count_params(t.module)
    macs = count(t.module, t.size, 1, counter)
    memory = activation_memory(t.gm, dt) if t.gm is not None else None
    notes = t.notes + _opaque_note(t.gm)
    lat = pred = None
    if latency:
        assert dev is not None
        lat = measure_latency(t.module, t.size, batch_size, dev, dt, threads, warmup, min_run_time, clock=clock)
    if predict:
        assert dev is not None
        pred = predict_latency(t.gm if t.gm is not None else t.module, t.size, batch_size, dev, dt, threads,
                               clock=clock)
    rows = _layer_rows(t.module, t.gm, params, macs, memory, pred, depth) if depth is not None else []
    return CostReport(t.name, t.source, "vcnn" if vcnn else "original", tuple(t.size), batch_size, dtype_name(dt),
                      params, macs, memory, lat, pred, rows, depth, notes, t.conversion)


def _check_options(counter: str, batch_size: int, depth: int | None, dtype: str | torch.dtype, device: str,
                   timed: bool, threads: int | None, warmup: int, min_run_time: float
                   ) -> tuple[torch.dtype, torch.device | None]:
    """API-level checks (the CLI shows them with flag names); the device only when something is timed."""
    if counter not in COUNTERS:
        raise OptionError("counter", f"counter '{counter}' is not one of {', '.join(COUNTERS)}")
    check_batch_size(batch_size)
    if depth is not None:
        whole_number("depth", depth, 0)
    if threads is not None:
        whole_number("threads", threads, 1)
    whole_number("warmup", warmup, 0)
    if not min_run_time > 0:
        raise OptionError("min_run_time", f"min_run_time must be greater than 0 seconds, got {min_run_time}")
    dt = parse_dtype(dtype)
    dev = parse_device(device)  # also refuses cuda on a CUDA-less machine when nothing is timed
    if timed:
        require_runnable(dev, dt)
        return dt, dev
    return dt, None


def _target(model: Any, kwargs: dict[str, Any] | None, input_size: Any, resolution: int | None, batch_size: int,
            build_on: str | None, vcnn: bool) -> _Target:
    """Load and trace through the pipeline (re-shaping, not re-tracing, a traced model); an untraceable
    model keeps its built module, without a graph; ``vcnn`` converts (strict)."""
    if isinstance(model, (TracedModel, fx.GraphModule)):
        tm = load_and_trace(model, kwargs, input_size, batch_size=batch_size, resolution=resolution)
    else:
        loaded = resolve_model(model, kwargs, device=build_on)
        try:
            tm = trace_loaded(loaded, input_size, batch_size, resolution=resolution)
        except NotTraceableError as exc:
            if vcnn:
                raise
            if build_on == "meta":  # an untraceable forward may need real values (Tensor.item()): real weights
                loaded = resolve_model(model, kwargs, device=None)
            size = input_size_of(input_size, resolution, loaded.default_input_size)
            # MACs, params and latency do not need a graph; activation memory does.
            return _Target(loaded.name, loaded.source, size, loaded.module, None,
                           [f"activation memory skipped: {exc}"])
    if not vcnn:
        return _Target(tm.name, tm.loaded.source, tm.input_size, tm.loaded.module, tm.gm)
    res = convert(tm)
    assert res.gm is not None  # strict conversion raised otherwise
    summary = {"verdict": res.verdict, "counts": res.counts, "approximations": list(res.approximations),
               "output_shape": list(res.output_shape) if isinstance(res.output_shape, tuple) else None}
    return _Target(tm.name, tm.loaded.source, tm.input_size, res.gm, res.gm,
                   ["VCNN graph: head cut at the global average pool, so MACs and params exclude the classifier"],
                   summary)


def _opaque_note(gm: fx.GraphModule | None) -> list[str]:
    opaque = _opaque_leaves(gm) if gm is not None else []
    if not opaque:
        return []
    shown = ", ".join(opaque[:3]) + (f" and {len(opaque) - 3} more" if len(opaque) > 3 else "")
    return [f"activation memory counts only the outputs of opaque leaf modules ({shown}), "
            "not their internal temporaries"]


def _opaque_leaves(gm: fx.GraphModule) -> list[str]:
    """call_module nodes whose module has children: fx did not look inside them."""
    out: list[str] = []
    for n in gm.graph.nodes:
        if n.op == "call_module":
            try:
                sub = gm.get_submodule(str(n.target))
            except AttributeError:
                continue
            if next(iter(sub.children()), None) is not None and type(sub).__name__ not in out:
                out.append(type(sub).__name__)
    return out
