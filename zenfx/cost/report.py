"""``cost_report``: params, MACs, activation memory and (optionally) latency in one result object.

Flow: resolve and trace once (on the meta device unless something needs real weights: measured
or predicted latency, or the fvcore counter, which runs ``torch.jit.trace`` on real tensors),
optionally convert to VCNN form, then each counter reads the graph it was given. MACs are counted
at batch 1 and stated per image (``macs``) and per batch (``macs_batch``); FLOPs = 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.fx as fx
from torch import nn

from ..errors import NotTraceableError, UsageError
from ..pipeline import TracedModel, load_and_trace
from .flops import COUNTERS, MacCount, count
from .latency import (LatencyResult, check_latency_dtype, dtype_name, measure_latency, resolve_device,
                      resolve_dtype)
from .memory import ActivationMemory, activation_memory
from .params import ParamCount, count_params
from .predictor import LatencyPrediction, _graph_batch, predict_latency

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


def _convert_vcnn(tm: TracedModel, batch_size: int) -> tuple[fx.GraphModule, dict[str, Any]]:
    """The VCNN form of an already traced model (strict: not convertible -> exit 4), shapes at the batch."""
    from ..tracing import propagate_shapes
    from ..vcnn import to_vcnn

    result = to_vcnn(tm, batch_size=batch_size, name=tm.name)
    gm = result.gm
    if gm is None:  # pragma: no cover - strict mode raises first
        raise UsageError(f"{tm.name} could not be converted to VCNN form")
    with torch.no_grad():
        propagate_shapes(gm, tm.input_size, batch_size)
    summary = {"verdict": result.verdict, "counts": result.counts, "approximations": list(result.approximations),
               "output_shape": list(result.output_shape) if isinstance(result.output_shape, tuple) else None}
    return gm, summary


def _layer_rows(module: nn.Module, gm: fx.GraphModule | None, params: ParamCount, macs: MacCount,
                memory: ActivationMemory | None, predicted: LatencyPrediction | None, depth: int) -> list[LayerRow]:
    from .memory import node_module_path

    mem = memory.by_module() if memory else {}
    lat = predicted.by_module() if predicted else {}
    shapes: dict[str, Any] = {}
    if gm is not None:
        for n in gm.graph.nodes:
            if n.op in ("placeholder", "output", "get_attr") or n.meta.get("shape") is None:
                continue
            path = node_module_path(gm, n)
            parts = path.split(".") if path else []
            for i in range(1, len(parts) + 1):
                shapes[".".join(parts[:i])] = n.meta.get("shape")
    if gm is not None:
        from ..graph import output_shape

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


def cost_report(model: str | nn.Module | TracedModel, kwargs: dict[str, Any] | None = None,
                input_size: Sequence[int] | None = None, batch_size: int = 1, *,
                dtype: str | torch.dtype = "float32", counter: str = "torch",
                depth: int | None = None, latency: bool = False, predict: bool = False,
                device: str = "cpu", threads: int | None = None, vcnn: bool = False,
                warmup: int = 10, min_run_time: float = 1.0, clock: str = "wall") -> CostReport:
    """Cost of ``model`` (a spec string, an ``nn.Module`` or a ``TracedModel``) at ``(batch_size, *input_size)``.

    * params (total, trainable) and MACs (per image; FLOPs = 2 x MACs) with ``counter`` ``torch``
      (FlopCounterMode on meta/fake tensors, the default) or ``fvcore`` (cross-check);
    * activation memory: peak live bytes over the graph's execution order at this batch size and
      dtype, and the largest single activation;
    * ``latency=True``: measured median/IQR with torch.utils.benchmark on ``device`` with ``threads``;
    * ``predict=True``: the per-operator latency predictor's estimate on the same setting;
    * ``clock="thread"``: time thread CPU time instead of wall time (CPU, 1 thread; shared machines);
    * ``depth=K``: a per-module breakdown down to depth K of the module hierarchy;
    * ``vcnn=True``: all of the above on the VCNN-converted graph instead of the original.

    Raises ``ShapeError`` (exit 2) naming the layer when the model cannot run at that size.
    """
    if counter not in COUNTERS:
        raise UsageError(f"unknown MAC counter '{counter}'", hint=f"choose one of {', '.join(COUNTERS)}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {batch_size}")
    if depth is not None and depth < 0:
        raise UsageError(f"--depth must be >= 0, got {depth}")
    dt = resolve_dtype(dtype)
    dev = None
    if latency or predict:
        dev = resolve_device(device)
        check_latency_dtype(dev, dt)
    elif str(device) != "cpu":
        resolve_device(device)  # still refuse --device cuda on a CUDA-less machine
    need_real = latency or predict or counter == "fvcore"
    build_on = None if (need_real or not isinstance(model, str)) else "meta"
    notes: list[str] = []
    gm: fx.GraphModule | None
    try:
        if isinstance(model, TracedModel):  # already resolved and traced upstream: do not redo it
            tm = model
            if (input_size and tuple(input_size) != tuple(tm.input_size)) or _graph_batch(tm.gm) != batch_size:
                import copy

                from ..tracing import propagate_shapes

                size_ = tuple(int(s) for s in (input_size or tm.input_size))
                gm_ = copy.deepcopy(tm.gm)  # the caller's graph keeps its own shapes
                gm_.meta.update({k: v for k, v in tm.gm.meta.items() if k not in gm_.meta})
                with torch.no_grad():
                    propagate_shapes(gm_, size_, batch_size)
                tm = TracedModel(tm.loaded, gm_, size_)  # type: ignore[arg-type]
        else:
            tm = load_and_trace(model, kwargs, input_size, device=build_on, batch_size=batch_size)
        name, source, size = tm.name, tm.loaded.source, tm.input_size
        gm = tm.gm
        target: nn.Module = tm.loaded.module
    except NotTraceableError as exc:
        if vcnn:
            raise
        # MACs, params and latency do not need a graph; activation memory does.
        from ..loading import resolve_model

        loaded = resolve_model(model, kwargs, device=build_on)
        name, source = loaded.name, loaded.source
        size = tuple(int(s) for s in (input_size or loaded.default_input_size))
        gm, target = None, loaded.module
        notes.append(f"activation memory skipped: {exc}")
    conversion: dict[str, Any] | None = None
    if vcnn:
        gm, conversion = _convert_vcnn(tm, batch_size)
        target = gm
        notes.append("VCNN graph: head cut at the global average pool, so MACs and params exclude the classifier")
    params = count_params(target)
    macs = count(target, size, 1, counter)
    memory = activation_memory(gm, dt) if gm is not None else None
    opaque = _opaque_leaves(gm) if gm is not None else []
    if opaque:
        shown = ", ".join(opaque[:3]) + (f" and {len(opaque) - 3} more" if len(opaque) > 3 else "")
        notes.append(f"activation memory counts only the outputs of opaque leaf modules ({shown}), "
                     "not their internal temporaries")
    lat = None
    if latency:
        assert dev is not None
        lat = measure_latency(target, size, batch_size, dev, dt, threads, warmup, min_run_time, clock=clock)
    pred = None
    if predict:
        assert dev is not None
        pred = predict_latency(gm if gm is not None else target, size, batch_size, dev, dt, threads, clock=clock)
    rows: list[LayerRow] = []
    if depth is not None:
        rows = _layer_rows(target, gm, params, macs, memory, pred, depth)
    return CostReport(name, source, "vcnn" if vcnn else "original", tuple(size), batch_size, dtype_name(dt),
                      params, macs, memory, lat, pred, rows, depth, notes, conversion)


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
