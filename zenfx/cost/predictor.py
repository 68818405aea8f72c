"""Latency predictor: a per-operator latency table measured on this device, summed over a graph.

Search budgets need the latency of thousands of candidates, far too many to time one by one. Each
node of a traced graph gets a key that fixes its cost: the operator (module class and its
configuration -- kernel, stride, groups, channels, bias... as ``extra_repr`` prints them -- or the
function / tensor method), the shapes of its tensor inputs, its constant arguments and its output
shape. Each distinct key is timed once on the real device, dtype and thread count -- by default
*in context* (the graph is run a few times and the op's own call is timed where it sits, so its
cache state is the real one), optionally *in isolation* with ``torch.utils.benchmark`` -- and
stored in a JSON table under the user cache directory::

    $ZENFX_CACHE_DIR or $XDG_CACHE_HOME/zenfx or ~/.cache/zenfx
        /latency/<device-name>__<cpu|cuda>__<dtype>__b<batch>__t<threads>[__thread-clock][__isolated]__torch<version>.json

A graph's predicted latency is the sum of its nodes' entries. Candidates of one search share
most of their operators, so after the first few models a prediction is a dictionary lookup.

Nodes that produce no tensor (``size()``, ``getattr``, asserts), placeholders, parameters and the
output cost nothing. In isolation, in-place operators are timed on cloned inputs (so the real run that follows
is unaffected), with denormals flushed while timing so that repeated in-place scaling cannot
drift into the slow denormal range.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..devices import dtype_name, is_meta, parse_device, parse_dtype
from ..errors import UsageError
from ..graph import shape, tensor_shapes
from ..runlog import atomic_write_text
from .calibration import PROBE_SHAPE, Calibration, OverheadCounts, measure_calibration, overhead_counts
from .latency import check_clock, device_name, make_input, pinned_threads, resolve_runnable, time_callable
from .memory import node_module_path, storage_kind, sum_by_module

TABLE_VERSION = 1
METHODS = ("context", "isolated")


def cache_dir() -> Path:
    """zenfx's cache root: ``$ZENFX_CACHE_DIR``, else ``$XDG_CACHE_HOME/zenfx``, else ``~/.cache/zenfx``."""
    if os.environ.get("ZENFX_CACHE_DIR"):
        return Path(os.environ["ZENFX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zenfx"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "device"


# --------------------------------------------------------------------------- the table


@dataclass
class LatencyTable:
    """Per-operator latencies (seconds) for one device / dtype / batch size / thread count."""

    device: str
    device_name: str
    dtype: str
    batch_size: int
    threads: int
    entries: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    clock: str = "wall"
    method: str = "context"
    calibration: Calibration | None = None  # measured once per table (zenfx.cost.calibration), then stored

    @classmethod
    def for_setting(cls, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
                    batch_size: int = 1, threads: int | None = None,
                    directory: str | Path | None = None, clock: str = "wall",
                    method: str = "context") -> LatencyTable:
        """The cached table for this setting (empty when none was measured yet)."""
        dev = parse_device(device)
        dt = parse_dtype(dtype)
        n = torch.get_num_threads() if threads is None else int(threads)
        check_clock(clock, dev, n)
        name = device_name(dev)
        root = Path(directory) if directory else cache_dir() / "latency"
        if method not in METHODS:
            raise UsageError(f"unknown measuring method '{method}'", hint="choose context or isolated")
        tag = ("" if clock == "wall" else f"__{clock}-clock") + ("" if method == "context" else f"__{method}")
        fname = (f"{_slug(name)}__{dev.type}__{dtype_name(dt)}__b{batch_size}__t{n}{tag}"
                 f"__torch{_slug(torch.__version__)}.json")
        table = cls(dev.type, name, dtype_name(dt), int(batch_size), n, {}, root / fname, clock, method)
        disk = table._read()
        table.entries.update(_entries(disk))
        table.calibration = Calibration.from_dict(disk.get("calibration"))
        return table

    def _read(self) -> dict[str, Any]:
        """The table file as stored; ``{}`` when absent, corrupt or of another format version."""
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # a corrupt cache is re-measured, never fatal
        if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
            return {}
        return data

    def save(self) -> None:
        """Merge with what is on disk (another process may have added entries) and write atomically.

        A calibration already on disk wins over this one: the first process to calibrate a table
        fixes it for every later prediction, so two workers never predict with different ones.
        """
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        disk = self._read()
        merged = _entries(disk)
        merged.update(self.entries)
        self.entries = merged
        self.calibration = Calibration.from_dict(disk.get("calibration")) or self.calibration
        doc = {
            "version": TABLE_VERSION,
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "clock": self.clock,
            "method": self.method,
            "torch": torch.__version__,
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "entries": dict(sorted(merged.items())),
        }
        atomic_write_text(self.path, json.dumps(doc, indent=0))

    def ensure_calibration(self, device: torch.device, dtype: torch.dtype, save: bool = True,
                           measure: bool = True) -> Calibration:
        """The table's calibration: stored, or stored meanwhile by another process, or probed now
        (a second or two, once per table) and saved with the table. ``measure=False`` refuses to probe."""
        if self.calibration is None:
            self.calibration = Calibration.from_dict(self._read().get("calibration"))
        if self.calibration is None:
            if not measure:
                raise UsageError(f"the latency table {self.path} has no calibration yet "
                                 "(a measuring prediction adds it)")
            self.calibration = probe_calibration(self, device, dtype)
            if save:
                self.save()  # adopts a calibration another process stored first
        assert self.calibration is not None
        return self.calibration

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries


def _entries(doc: dict[str, Any]) -> dict[str, float]:
    entries = doc.get("entries")
    return {str(k): float(v) for k, v in entries.items()} if isinstance(entries, dict) else {}


# --------------------------------------------------------------------------- operator keys


def _spec(a: Any) -> str:
    if isinstance(a, fx.Node):
        one = shape(a)
        if a.op == "get_attr":
            return f"P{list(one) if one is not None else '?'}"
        if one is not None:
            dt = a.meta.get("dtype")
            tag = "" if not isinstance(dt, torch.dtype) or dt.is_floating_point else dtype_name(dt)
            return f"T{list(one)}{tag}"
        many = tensor_shapes(a)
        return "TT" + "".join(f"{list(x)}" for x in many) if many else "?"
    if isinstance(a, (list, tuple)):
        return "(" + ",".join(_spec(x) for x in a) + ")"
    if isinstance(a, dict):
        return "{" + ",".join(f"{k}={_spec(v)}" for k, v in sorted(a.items())) + "}"
    if isinstance(a, torch.dtype):
        return dtype_name(a)
    text = repr(a)
    return text if len(text) <= 60 else hashlib.sha1(text.encode()).hexdigest()[:12]


def _op_identity(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        cls = f"{type(mod).__module__}.{type(mod).__qualname__}"
        has_children = next(iter(mod.children()), None) is not None
        if has_children:  # an opaque leaf block: its whole structure is its configuration
            return f"{cls}#{hashlib.sha1(repr(mod).encode()).hexdigest()[:12]}"
        extra = mod.extra_repr()
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and "bias" not in extra:
            extra += f", bias={mod.bias is not None}"
        return f"{cls}({extra})"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
    return f"{mod}.{name}" if mod else str(name)


def op_key(gm: fx.GraphModule, node: fx.Node) -> str | None:
    """The table key of ``node``; ``None`` for nodes that cost nothing (no tensor produced)."""
    if node.op not in ("call_module", "call_function", "call_method"):
        return None
    out = node.meta.get("shape")  # the raw shape record, verbatim: it is part of saved table keys
    if out is None:
        return None
    return f"{_op_identity(gm, node)}|{_spec(node.args)}|{_spec(dict(node.kwargs))}->{list(out)}"


# --------------------------------------------------------------------------- measuring


@contextlib.contextmanager
def _flush_denormal() -> Iterator[None]:
    ok = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if ok:
            torch.set_flush_denormal(False)


def _clone_tensors(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tensors(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _clone_tensors(v) for k, v in obj.items()}
    return obj


def _op_callable(gm: nn.Module, n: fx.Node, args: tuple[Any, ...]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """What a node calls and its positional arguments (a method's ``self`` becomes the bound method)."""
    if n.op == "call_module":
        return gm.get_submodule(str(n.target)), args
    if n.op == "call_method":
        return getattr(args[0], str(n.target)), tuple(args[1:])
    return n.target, args  # type: ignore[return-value]


_RUN = object()  # ``timed`` result meaning "now run the node normally"


class _MissingOpInterpreter(fx.Interpreter):
    """Runs the graph; each node whose table key is missing goes to ``timed`` with its arguments."""

    def __init__(self, gm: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable) -> None:
        super().__init__(gm)
        self.keys = keys
        self.table = table

    def run_node(self, n: fx.Node) -> Any:
        key = self.keys.get(n)
        if key is None or key in self.table.entries:
            return super().run_node(n)
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            out = self.timed(n, key, args, kwargs)
        return super().run_node(n) if out is _RUN else out

    def timed(self, n: fx.Node, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError


class _MeasuringInterpreter(_MissingOpInterpreter):
    """Runs the graph for real and times, in isolation, each node whose key is missing."""

    def __init__(self, gm: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable,
                 device: torch.device, threads: int, min_run_time: float) -> None:
        super().__init__(gm, keys, table)
        self.device = device
        self.threads = threads
        self.min_run_time = min_run_time
        self.measured: list[str] = []

    def timed(self, n: fx.Node, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if storage_kind(self.module, n) == "inplace":  # type: ignore[arg-type]
            args, kwargs = _clone_tensors(args), _clone_tensors(kwargs)
        fn, args = _op_callable(self.module, n, args)

        def call() -> Any:
            return fn(*args, **kwargs)

        with _flush_denormal():
            median, _iqr, _b, _r = time_callable(call, self.device, self.threads, self.min_run_time,
                                                 warmup=2, clock=self.table.clock)
        self.table.entries[key] = median
        self.measured.append(key)
        return _RUN


class _ContextTimingInterpreter(_MissingOpInterpreter):
    """Runs the whole graph and times each node whose key is missing *in context*.

    In context means where the op really runs: its weights and inputs are as cold or warm in the
    caches as in the eager model, and the Python between two ops is the real graph's. Isolated
    repetition keeps everything hot in L1/L2 and under-predicts memory-bound models (MobileNets)
    by 30-60% on CPU; context timing is the default. Only the op's own call is inside the clock
    reads, not the interpreter's bookkeeping.
    """

    def __init__(self, gm: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable,
                 timer: Callable[[], float]) -> None:
        super().__init__(gm, keys, table)
        self.timer = timer
        self.samples: dict[str, list[float]] = {}

    def timed(self, n: fx.Node, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # resolve the callable first: the submodule lookup is bookkeeping, not the op
        fn, args = _op_callable(self.module, n, args)
        timer = self.timer
        t0 = timer()
        out = fn(*args, **kwargs)
        t1 = timer()
        self.samples.setdefault(key, []).append(t1 - t0)
        return out


def _measure_in_context(runner: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable,
                        x: torch.Tensor, device: torch.device, min_run_time: float,
                        min_passes: int = 10, max_passes: int = 200) -> list[str]:
    """Run the graph repeatedly (one warm-up pass, then >= ``min_passes`` passes and at least
    ``min_run_time`` seconds), timing missing ops; the entry is the median over passes and over
    the key's occurrences in the graph."""
    import statistics

    from .latency import make_timer

    timer = make_timer(device, table.clock)
    interp = _ContextTimingInterpreter(runner, keys, table, timer)
    interp.run(x)  # warm-up: allocator, lazy init, first-touch of weights
    interp.samples.clear()
    start = time.perf_counter()
    passes = 0
    while passes < min_passes or (time.perf_counter() - start < min_run_time and passes < max_passes):
        interp.run(x)
        passes += 1
    for key, values in interp.samples.items():
        table.entries[key] = float(statistics.median(values))
    return list(interp.samples)


# --------------------------------------------------------------------------- prediction


@dataclass
class NodeLatency:
    name: str
    module_path: str
    key: str
    seconds: float


@dataclass
class LatencyPrediction:
    """A predicted forward latency. ``total_s`` is the calibrated figure (what budgets compare):
    ``raw_s``, the sum of the operators' entries, plus ``overhead_s``, the table calibration's
    estimate of the module calls and Python around them (0 with ``calibrate=False``)."""

    total_s: float
    batch_size: int
    threads: int
    device: str
    device_name: str
    dtype: str
    nodes: list[NodeLatency]
    hits: int
    measured: int
    table_path: str | None
    measure_time_s: float = 0.0
    raw_s: float = 0.0
    overhead_s: float = 0.0
    counts: OverheadCounts | None = None
    calibrated: bool = False
    clock: str = "wall"

    @property
    def per_image_s(self) -> float:
        return self.total_s / self.batch_size

    def by_module(self) -> dict[str, float]:
        """Predicted seconds of the operators under each module path (children included; ``""`` is all;
        raw operator sums: the calibration's overhead belongs to no single operator)."""
        return sum_by_module((n.module_path, n.seconds) for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted_ms": self.total_s * 1e3,
            "per_image_predicted_ms": self.per_image_s * 1e3,
            "raw_predicted_ms": self.raw_s * 1e3,
            "overhead_ms": self.overhead_s * 1e3,
            "calibrated": self.calibrated,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "clock": self.clock,
            "operators": len(self.nodes),
            "module_calls": self.counts.module_calls if self.counts is not None else None,
            "table_hits": self.hits,
            "newly_measured": self.measured,
            "table": self.table_path,
        }


def predict_latency(model: nn.Module | fx.GraphModule, input_size: Sequence[int], batch_size: int = 1,
                    device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
                    threads: int | None = None, table: LatencyTable | None = None,
                    measure_missing: bool = True, min_run_time: float = 0.02,
                    save: bool = True, clock: str = "wall", method: str = "context",
                    calibrate: bool = True) -> LatencyPrediction:
    """Predicted forward latency of ``model``: the sum of its operators' table entries, plus (with
    ``calibrate``, the default) the overhead of the eager forward around them as the table's stored
    calibration models it (``zenfx.cost.calibration``; probed once per table when it has none).

    ``model`` is an ``nn.Module`` with real weights (traced here) or a zenfx-traced GraphModule
    (shapes at ``batch_size``). Operators missing from the table are timed on this device, added
    to it, and the table is saved back to the cache unless ``save=False``. With
    ``measure_missing=False`` missing operators, or a missing calibration, raise ``UsageError``.
    ``method="context"`` (default) times missing operators where they run inside the graph,
    ``"isolated"`` times each one alone with torch.utils.benchmark (warm caches; under-predicts
    memory-bound models). The two methods keep separate tables.
    """
    from ..pipeline import load_and_trace

    dev, dt = resolve_runnable(device, dtype)
    size = tuple(int(s) for s in input_size)
    gm = load_and_trace(model, input_size=size, batch_size=batch_size).gm  # a traced graph: re-shaped on a copy
    with pinned_threads(threads) as n:
        if table is None:
            table = LatencyTable.for_setting(dev, dt, batch_size, n, clock=clock, method=method)
        if table.threads != n or table.batch_size != batch_size or table.dtype != dtype_name(dt):
            raise UsageError("the latency table was measured for another batch size / dtype / thread count")
        keys = {node: k for node in gm.graph.nodes if (k := op_key(gm, node)) is not None}
        t0 = time.perf_counter()
        measured = _fill_table(gm, keys, table, dev, dt, (batch_size, *size), n, min_run_time,
                               measure_missing, save)
        cal = table.ensure_calibration(dev, dt, save, measure_missing) if calibrate else None
        elapsed = time.perf_counter() - t0
    nodes = [NodeLatency(node.name, node_module_path(gm, node), k, table.entries[k]) for node, k in keys.items()]
    counts = overhead_counts(gm, len(nodes))
    raw = sum(x.seconds for x in nodes)
    overhead = cal.overhead_s(counts) if cal is not None else 0.0
    return LatencyPrediction(raw + overhead, batch_size, n, dev.type, table.device_name, dtype_name(dt), nodes,
                             len(keys) - len(measured), len(measured), str(table.path) if table.path else None,
                             elapsed, raw, overhead, counts, cal is not None, table.clock)


def _fill_table(gm: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable, dev: torch.device,
                dt: torch.dtype, input_shape: tuple[int, ...], threads: int, min_run_time: float,
                measure_missing: bool, save: bool) -> list[str]:
    """Time the operators ``table`` lacks (or refuse, without ``measure_missing``); the keys measured."""
    missing = {k for k in keys.values() if k not in table.entries}
    if not missing:
        return []
    if not measure_missing:
        raise UsageError(f"{len(missing)} operators are not in the latency table {table.path}")
    measured = _measure_missing(gm, keys, table, dev, dt, input_shape, threads, min_run_time)
    if save:
        table.save()
    return measured


def _measure_missing(gm: fx.GraphModule, keys: dict[fx.Node, str], table: LatencyTable, dev: torch.device,
                     dt: torch.dtype, input_shape: tuple[int, ...], threads: int, min_run_time: float,
                     context_time: float | None = None) -> list[str]:
    """Time the operators the table lacks on this device (into ``table``); returns the keys measured.

    The graph runs on real weights: a meta-device model has no values to time.
    """
    if is_meta(gm):
        raise UsageError("measuring operator latencies needs real weights, not a meta-device model")
    runner = _prepare_graph(gm, dev, dt)
    rkeys = keys_for(runner, gm, keys)
    x = make_input(input_shape, dev, dt)
    with torch.inference_mode():
        if table.method == "isolated":
            interp = _MeasuringInterpreter(runner, rkeys, table, dev, threads, min_run_time)
            interp.run(x)
            return interp.measured
        # >= 10 passes over >= 0.5 s: the per-op median then shrugs off bursts of
        # contention shorter than the window (a shared CPU's main noise)
        run_time = max(min_run_time * 25, 0.5) if context_time is None else context_time
        return _measure_in_context(runner, rkeys, table, x, dev, run_time)


def raw_in_context(model: nn.Module, input_size: Sequence[int], table: LatencyTable, device: torch.device,
                   dtype: torch.dtype, context_time: float) -> tuple[float, OverheadCounts]:
    """Sum of ``model``'s operators timed in context for ``context_time`` seconds into ``table`` (a
    private one: the calibration probe's), with its overhead counts. Threads must already be pinned."""
    from ..pipeline import load_and_trace

    gm = load_and_trace(model, input_size=tuple(input_size), batch_size=table.batch_size).gm
    keys = {node: k for node in gm.graph.nodes if (k := op_key(gm, node)) is not None}
    _measure_missing(gm, keys, table, device, dtype, (table.batch_size, *input_size), table.threads, 0.01,
                     context_time)
    return sum(table.entries[k] for k in keys.values()), overhead_counts(gm, len(keys))


def probe_calibration(table: LatencyTable, device: torch.device, dtype: torch.dtype,
                      run_time: float = 0.15) -> Calibration:
    """Measure ``table``'s calibration now (zenfx.cost.calibration's probe, ~2 s); not stored here."""
    def gap(model: nn.Module) -> tuple[float, OverheadCounts]:
        return _probe_gap(model, table, device, dtype, run_time)

    return measure_calibration(gap)


def _probe_gap(model: nn.Module, table: LatencyTable, device: torch.device, dtype: torch.dtype,
               run_time: float) -> tuple[float, OverheadCounts]:
    """Eager median of a probe network minus the sum of its operators timed as ``table`` times them
    (a private table: the probe's operators stay out of the user's), and its overhead counts."""
    from .latency import measure_latency

    private = LatencyTable(table.device, table.device_name, table.dtype, table.batch_size, table.threads,
                           clock=table.clock, method=table.method)
    with pinned_threads(table.threads):
        raw, counts = raw_in_context(model, PROBE_SHAPE, private, device, dtype, run_time)
    eager = measure_latency(model, PROBE_SHAPE, table.batch_size, device, dtype, table.threads, warmup=5,
                            min_run_time=run_time, clock=table.clock)
    return eager.median_s - raw, counts


def _prepare_graph(gm: fx.GraphModule, device: torch.device, dtype: torch.dtype) -> fx.GraphModule:
    """A device/dtype copy of the graph when needed; the traced graph itself otherwise."""
    import copy

    first = next(iter(list(gm.parameters()) + list(gm.buffers())), None)
    if first is not None and first.device == device and (not first.is_floating_point() or first.dtype == dtype):
        gm.eval()
        return gm
    clone = copy.deepcopy(gm)
    clone.to(device=device, dtype=dtype)
    clone.eval()
    return clone


def keys_for(runner: fx.GraphModule, original: fx.GraphModule, keys: dict[fx.Node, str]) -> dict[fx.Node, str]:
    """Map keys computed on ``original``'s nodes onto ``runner``'s (a deep copy keeps node order)."""
    if runner is original:
        return keys
    by_name = {n.name: k for n, k in keys.items()}
    return {n: by_name[n.name] for n in runner.graph.nodes if n.name in by_name}
