"""Scoring: resolve, trace and convert once; run each proxy on a private copy; repeat, seed, time.

``score(model, proxy="zen")`` is the library's headline call and what ``zenfx score`` renders.

Flow::

    spec / nn.Module / GraphModule / TracedModel / VCNNResult / Prepared
      -> prepare()   zenfx.pipeline's load -> trace -> convert, once (on the meta device when
                     every proxy re-initialises all weights); timed
      -> per proxy   score_proxy(prepared, proxy, ScoreOptions): the unit a search reuses;
                     the graph its ProxySpec names (original or VCNN; ``graph=`` overrides),
                     materialised on the device/dtype, with GAP+Linear appended when it needs
                     logits on the VCNN graph (``with_head``)
      -> per repeat  ctx.repeat_index = r, global RNG seeded from (seed, repeat, proxy), value,
                     NaN/Inf -> NumericalError with a hint
      -> ScoreResult mean, 95% interval 1.96*std/sqrt(n) (np.std, ddof 0, as the reference),
                     seconds, conversion summary, timings

Copies: a proxy that re-initialises every weight itself (``ProxySpec.reinitializes``: zen, phi)
gets one materialised copy reused across its repeats, provided the graph holds no parameter that
its init does not overwrite; any other mutating proxy gets a fresh deep copy per repeat; a
read-only proxy (``mutates=False``: params, flops) reads the shared graph.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .devices import DTYPE_NAMES, dtype_name, is_meta, parse_device, parse_dtype, require_runnable
from .errors import NumericalError, OptionError, UsageError, ZenfxError
from .graph import BN_TYPES, CONV_TYPES, output_shape
from .loading import InputSize
from .pipeline import TracedModel, check_batch_size, input_size_of, load_and_trace, whole_number
from .pipeline import convert as convert_traced
from .proxies.aggregate import is_aggregate, members_of
from .proxies.base import ProxyContext, ProxySpec, get_proxy
from .vcnn.report import VCNNResult

DEFAULT_REPEAT = 4
DEFAULT_BATCH_SIZE = 16
BN_STATS = ("official", "batch")
GRAPHS = ("original", "vcnn")


# --------------------------------------------------------------------------- options


def parse_proxies(proxy: str | Sequence[str] | Sequence[ProxySpec]) -> list[ProxySpec]:
    """Proxy specs from ``"zen,phi"``, ``["zen", "phi"]`` or ProxySpecs; each once, in order. An
    aggregated objective (``"az"``, ``"zen+zico"``) stands for its members (``zenfx.ranking`` ranks
    a pool of models by the aggregate)."""
    items = proxy.split(",") if isinstance(proxy, str) else list(proxy)
    specs: list[ProxySpec] = []
    for item in items:
        if isinstance(item, str) and "," in item:
            found = parse_proxies(item)
        elif isinstance(item, ProxySpec):
            found = [item]
        elif isinstance(item, str) and is_aggregate(item):  # "az", "zen+zico": their members
            found = [get_proxy(m) for m in members_of(item)]
        elif isinstance(item, str) and item.strip():
            found = [get_proxy(item)]
        else:
            found = []
        specs.extend(s for s in found if s.name not in [x.name for x in specs])
    if not specs:
        raise OptionError("proxy", "no proxy given (e.g. proxy='zen' or proxy='zen,params')")
    return specs


@dataclass
class ScoreOptions:
    """How a proxy is run: everything ``score`` takes besides the model and the proxies.

    ``checked()`` validates and normalises (device and dtype parsed); a search loop builds one and
    passes it to :func:`score_proxy` for every candidate."""

    batch_size: int = DEFAULT_BATCH_SIZE
    repeat: int = DEFAULT_REPEAT
    seed: int = 0
    bn_stat: str = "official"
    mixup_gamma: float = 1e-2
    device: str | torch.device = "cpu"
    dtype: str | torch.dtype = "float32"
    num_classes: int = 1000
    graph: str | None = None
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str, int, int], None] | None = None

    def checked(self) -> ScoreOptions:
        dev = parse_device(self.device)
        dt = parse_dtype(self.dtype)
        require_runnable(dev, dt)
        bn_stat = str(self.bn_stat).strip().lower()
        if bn_stat not in BN_STATS:
            raise OptionError("bn_stat", f"bn_stat must be official or batch, got '{self.bn_stat}'")
        if self.graph not in (None, *GRAPHS):
            raise OptionError("graph", f"graph must be original or vcnn, got '{self.graph}'")
        repeat = whole_number("repeat", self.repeat, 1)
        try:
            gamma = float(self.mixup_gamma)
        except (TypeError, ValueError):
            gamma = math.nan
        if not (gamma > 0 and math.isfinite(gamma)):
            raise OptionError("mixup_gamma", f"mixup_gamma must be a positive number, got {self.mixup_gamma!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise OptionError("seed", f"seed must be an integer, got {self.seed!r}")
        return ScoreOptions(check_batch_size(self.batch_size), repeat, int(self.seed), bn_stat,
                            gamma, dev, dt, whole_number("num_classes", self.num_classes, 1), self.graph,
                            self.batches, dict(self.extra or {}), self.progress)

    @property
    def torch_device(self) -> torch.device:
        return self.device if isinstance(self.device, torch.device) else parse_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return self.dtype if isinstance(self.dtype, torch.dtype) else parse_dtype(self.dtype)


# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """A model resolved, traced and (when a proxy needs it) converted: everything repeats reuse."""

    name: str
    source: str
    input_size: InputSize
    original: fx.GraphModule
    vcnn: VCNNResult | None = None
    on_meta: bool = False
    tracer: str = "unknown"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    spec: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    device_copies: dict[tuple[Any, ...], nn.Module] = field(default_factory=dict, repr=False)
    traced: TracedModel | None = field(default=None, repr=False)
    # What proxies computed by one common pass share across this model's scores (ProxyContext.shared)
    shared: dict[Any, Any] = field(default_factory=dict, repr=False)

    def device_copy(self, proxy: str, kind: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
        """The graph materialised on ``device`` for a proxy that overwrites every weight and
        statistic each repeat (zen, phi): built once per Prepared, so a search loop or a benchmark
        that scores one candidate many times pays the copy (deepcopy, recompile, allocation: tens
        of ms, most of a GPU score) once. Kept per proxy, since a proxy may change its copy."""
        key = (proxy, kind, str(device), dtype)
        net = self.device_copies.get(key)
        if net is None:
            net = materialise(self.graph(kind), self.on_meta, device, dtype)
            self.device_copies[key] = net
        return net

    def graph(self, kind: str) -> fx.GraphModule:
        if kind == "original":
            return self.original
        if self.vcnn is None:
            t = time.perf_counter()
            self.vcnn = convert_traced(self._traced())
            self.timings["convert"] = self.timings.get("convert", 0.0) + time.perf_counter() - t
        assert self.vcnn.gm is not None  # strict conversion raised otherwise
        return self.vcnn.gm

    def _traced(self) -> TracedModel:
        if self.traced is None:  # a Prepared built by hand: wrap its graph (no re-trace)
            self.traced = load_and_trace(self.original, input_size=self.input_size)
        return self.traced

    @property
    def conversion(self) -> dict[str, Any] | None:
        return None if self.vcnn is None else self.vcnn.to_dict()


_COVERED = CONV_TYPES + (nn.Linear,) + BN_TYPES + (nn.GroupNorm,)


def uncovered_tensors(net: nn.Module) -> list[str]:
    """Parameters/buffers the Gaussian init (and the BN reset) would leave untouched, among those
    the graph actually uses: modules its ``call_module`` nodes call and tensors its ``get_attr``
    nodes read (for a plain module: every module)."""
    if isinstance(net, fx.GraphModule):
        used = [(str(n.target), net.get_submodule(str(n.target))) for n in net.graph.nodes if n.op == "call_module"]
        attrs = [str(n.target) for n in net.graph.nodes if n.op == "get_attr"]
    else:
        used, attrs = [("", net)], []
    from .proxies.zen import functional_weights

    fw, fb = functional_weights(net)
    set_by_init = {id(t) for t in fw + fb}
    out: list[str] = []
    for path, top in used:
        for sub, m in top.named_modules():
            name = ".".join(p for p in (path, sub) if p)
            ok_params = ("weight", "bias") if isinstance(m, _COVERED) else ()
            ok_buffers = ("running_mean", "running_var", "num_batches_tracked") if isinstance(m, BN_TYPES) else ()
            for pname, _p in m.named_parameters(recurse=False):
                if pname not in ok_params:
                    out.append(f"{name}.{pname}" if name else pname)
            for bname, b in m.named_buffers(recurse=False):
                if b is not None and bname not in ok_buffers:
                    out.append(f"{name}.{bname}" if name else bname)
    for target in attrs:
        owner_path, _, leaf = target.rpartition(".")
        owner = net.get_submodule(owner_path) if owner_path else net
        covered = (isinstance(owner, _COVERED) and leaf in ("weight", "bias")) or (
            isinstance(owner, BN_TYPES) and leaf in ("running_mean", "running_var", "num_batches_tracked"))
        t = getattr(owner, leaf, None)
        if isinstance(t, torch.Tensor) and not covered and id(t) not in set_by_init:
            out.append(target)
    return sorted(set(out))


def prepare(model: Any, proxies: str | Sequence[str] | Sequence[ProxySpec] = "zen", *,
            kwargs: dict[str, Any] | None = None, input_size: str | Sequence[int] | None = None,
            resolution: int | None = None, graph: str | None = None,
            allow_meta: bool = True) -> Prepared:
    """Resolve, trace and convert once (``zenfx.pipeline``). Builds on the meta device when every
    proxy asked for re-initialises all weights (and the graph it scores holds nothing else), which
    skips the constructor's weight init and makes tracing a fraction of the cost; when that does
    not work out (conversion fails on meta, or the graph holds tensors the proxy's init does not
    set), builds again with real weights and says so in ``notes``.

    ``model``: a spec string, an ``nn.Module``, a zenfx-traced ``GraphModule``, a ``TracedModel``,
    a ``VCNNResult`` (its graph is scored; "original" proxies see it too) or a ``Prepared`` (returned).
    """
    if isinstance(model, Prepared):
        return model
    if isinstance(model, VCNNResult):
        return _prepared_vcnn(model, input_size, resolution)
    specs = parse_proxies(proxies)
    kinds = {graph or s.graph for s in specs}
    need_real = any(s.mutates and not s.reinitializes for s in specs)
    use_meta = allow_meta and isinstance(model, str) and not need_real
    prep = _load(model, kwargs, input_size, resolution, "meta" if use_meta else None)
    why = _vcnn_fails_on_meta(model, prep) if "vcnn" in kinds else None
    if why is None and prep.on_meta:  # read-only proxies (params, flops) never look at values: skip their graphs
        why = _uncovered_on_meta(model, prep, sorted({graph or s.graph for s in specs if s.mutates}))
    if why is not None:
        return _redo_real(model, specs, kwargs, input_size, resolution, graph, prep, why)
    return prep


def _vcnn_fails_on_meta(model: Any, prep: Prepared) -> str | None:
    """Convert now: why to build again with real weights when conversion fails on the meta device
    (a spec can be rebuilt; any other failure propagates), else None."""
    try:
        prep.graph("vcnn")
    except ZenfxError:
        raise
    except Exception as exc:
        if not (prep.on_meta and isinstance(model, str)):
            raise
        return f"VCNN conversion failed on the meta device ({type(exc).__name__}); redone with real weights"
    return None


def _uncovered_on_meta(model: Any, prep: Prepared, kinds: list[str]) -> str | None:
    """Why to build again with real weights when a meta-device graph holds tensors the Gaussian
    init does not set (their values would be garbage), else None; a module given on meta is refused."""
    for kind in kinds:
        left = uncovered_tensors(prep.graph(kind))
        if not left:
            continue
        listed = ", ".join(left[:3]) + (f" (+{len(left) - 3} more)" if len(left) > 3 else "")
        if not isinstance(model, str):
            raise UsageError(f"{prep.name} lives on the meta device but its {kind} graph holds tensors the "
                             f"Gaussian init does not set ({listed})",
                             hint="build the model with real weights (on the CPU) before scoring it")
        return f"built with real weights: the {kind} graph holds tensors the Gaussian init does not set ({listed})"
    return None


def _load(model: Any, kwargs: dict[str, Any] | None, input_size: Any, resolution: int | None,
          device: str | None) -> Prepared:
    """Load and trace (timed) through the pipeline; a traced model is re-shaped, never re-traced."""
    tm = load_and_trace(model, kwargs, input_size, device=device, resolution=resolution)
    spec = model if isinstance(model, str) else tm.loaded.module
    timings = {} if tm is model else dict(tm.timings)  # a TracedModel used as it is cost nothing here
    return Prepared(tm.name, tm.loaded.source, tm.input_size, tm.gm, tracer=tm.tracer, timings=timings,
                    notes=[], spec=spec, kwargs=dict(kwargs or {}), on_meta=is_meta(tm.gm), traced=tm)


def _redo_real(model: Any, specs: list[ProxySpec], kwargs: dict[str, Any] | None, input_size: Any,
               resolution: int | None, graph: str | None, first: Prepared, note: str) -> Prepared:
    redo = prepare(model, specs, kwargs=kwargs, input_size=input_size, resolution=resolution, graph=graph,
                   allow_meta=False)
    redo.notes.insert(0, note)
    redo.timings = {k: redo.timings.get(k, 0.0) + first.timings.get(k, 0.0)
                    for k in dict.fromkeys([*redo.timings, *first.timings])}
    return redo


def _prepared_vcnn(res: VCNNResult, input_size: Any, resolution: int | None) -> Prepared:
    if res.gm is None:
        raise UsageError(f"{res.name} has no VCNN graph to score (verdict {res.verdict})")
    own = tuple(res.input_size or ()) or res.gm.meta.get("zenfx_input_size") or (3, 224, 224)
    size = input_size_of(input_size, resolution, own)
    return Prepared(res.name or type(res.gm).__name__, "vcnn", size, res.gm, vcnn=res, on_meta=is_meta(res.gm),
                    tracer=res.tracer, notes=["scored a VCNNResult: proxies that use the original graph see the "
                                              "VCNN graph"])


# --------------------------------------------------------------------------- heads


class VCNNWithHead(nn.Module):
    """The VCNN graph (pre-GAP map) followed by global average pooling and a Linear classifier:
    logits for proxies that need a loss (``ProxySpec.needs_head``)."""

    def __init__(self, body: nn.Module, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


def feature_channels(gm: nn.Module, input_size: Sequence[int] | None = None) -> int:
    """Channels of the pre-GAP map: from the shape annotations, else a meta/fake forward."""
    shp = output_shape(gm) if isinstance(gm, fx.GraphModule) else None
    if isinstance(shp, tuple) and len(shp) >= 2 and isinstance(shp[1], int):
        return int(shp[1])
    own = gm.meta.get("zenfx_input_size") if isinstance(gm, fx.GraphModule) else None
    size = tuple(input_size or own or (3, 224, 224))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with torch.no_grad():
        if is_meta(gm):
            out = gm(torch.empty((1, *size), device="meta"))
        else:
            with FakeTensorMode(allow_non_fake_inputs=True):
                out = gm(torch.empty((1, *size)))
    return int(out.shape[1])


def with_head(body: nn.Module, num_classes: int = 1000, *, in_features: int | None = None,
              input_size: Sequence[int] | None = None) -> VCNNWithHead:
    """Append GAP + Linear(num_classes) to a VCNN graph so it yields logits. The Linear gets
    PyTorch's default init from the global RNG (seeded by ``score`` for every repeat) and is
    created on the body's device and dtype."""
    c = in_features if in_features is not None else feature_channels(body, input_size)
    ref = next(iter(list(body.parameters()) + list(body.buffers())), None)
    net = VCNNWithHead(body, c, num_classes)
    if ref is not None:
        net.fc.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
    return net


# --------------------------------------------------------------------------- results


@dataclass
class ProxyScore:
    proxy: str
    value: float
    ci95: float | None
    std: float | None
    values: list[float]
    seconds: float  # wall time of all repeats of this proxy (copies and init included)
    repeat: int
    graph: str
    higher_is_better: bool = True
    reference: str = ""

    @property
    def seconds_per_repeat(self) -> float:
        return self.seconds / max(1, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": self.ci95, "std": self.std, "seconds": self.seconds,
                "seconds_per_repeat": self.seconds_per_repeat, "repeat": self.repeat,
                "values": list(self.values), "graph": self.graph,
                "higher_is_better": self.higher_is_better, "reference": self.reference}


@dataclass
class ScoreResult:
    model: str
    source: str
    input_size: InputSize
    batch_size: int
    repeat: int
    seed: int
    bn_stat: str
    mixup_gamma: float
    device: str
    dtype: str
    num_classes: int
    scores: dict[str, ProxyScore]
    conversion: dict[str, Any] | None = None
    tracer: str = "unknown"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def resolution(self) -> int | list[int]:
        _, h, w = self.input_size
        return h if h == w else [h, w]

    @property
    def main(self) -> ProxyScore:
        """The headline score: the only proxy scored, else Zen's. With several proxies and no Zen
        among them there is no headline: ``UsageError`` naming the choices (read ``result[name]``)."""
        if len(self.scores) == 1:
            return next(iter(self.scores.values()))
        if "zen" in self.scores:
            return self.scores["zen"]
        raise UsageError(f"this result holds {len(self.scores)} proxies ({', '.join(self.scores)}) and no zen: "
                         f"say which, e.g. result['{next(iter(self.scores))}'].value")

    @property
    def value(self) -> float:
        """:attr:`main`'s value: the only proxy's, else Zen's (never silently the first of several)."""
        return self.main.value

    @property
    def ci95(self) -> float | None:
        return self.main.ci95

    def __getitem__(self, proxy: str) -> ProxyScore:
        return self.scores[proxy]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "source": self.source, "resolution": self.resolution,
            "input_size": list(self.input_size), "batch_size": self.batch_size, "repeat": self.repeat,
            "seed": self.seed, "bn_stat": self.bn_stat, "mixup_gamma": self.mixup_gamma,
            "device": self.device, "dtype": self.dtype, "num_classes": self.num_classes,
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
            "conversion": self.conversion, "tracer": self.tracer,
            "timings": dict(self.timings), "notes": list(self.notes),
        }


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean, 95% half-interval 1.96*std/sqrt(n) and std (ddof 0, as the reference's np.std).
    The interval is None for a single repeat."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, None, None
    std = float(arr.std())
    return mean, float(1.96 * std / math.sqrt(len(arr))), std


# --------------------------------------------------------------------------- scoring


def _hint(spec: ProxySpec, dtype: torch.dtype, mixup_gamma: float, value: float) -> str:
    parts = []
    if dtype != torch.float32:
        parts.append(f"{DTYPE_NAMES[dtype]} overflows on deep graphs: try --dtype float32")
    if spec.name == "phi":
        parts.append("Φ runs on the BN-free network, whose activations grow about sqrt(fan_in/2) per "
                     "layer with N(0,1) weights; deep nets overflow unless the graph is a plain "
                     "conv/ReLU chain (then zenfx rescales exactly): use zen, which keeps BN")
    if spec.name == "zen" and value == -math.inf:
        parts.append("the output did not change under the perturbation: increase --mixup-gamma or check "
                     "the network is not dead")
    if spec.name == "zen" and mixup_gamma > 1:
        parts.append(f"--mixup-gamma {mixup_gamma:g} is far above the reference's 0.01")
    if not parts:
        parts.append("the activations overflow with N(0,1) weights (about sqrt(fan_in/2) growth per layer "
                     "that no BatchNorm renormalises: a deep BN-free stretch); check the model's BN layers")
    return "; ".join(parts)


def _seed_global(ctx: ProxyContext, offset: int, device: torch.device) -> None:
    seed = ctx.derived_seed(offset)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)


def materialise(template: nn.Module, on_meta: bool, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A private copy of ``template`` on ``device``/``dtype`` (storage allocated, not filled, when it
    lives on the meta device: the proxy's own init fills it)."""
    net = copy.deepcopy(template)
    net = net.to_empty(device=device) if on_meta else net.to(device=device)
    if dtype != torch.float32:
        net = net.to(dtype=dtype)
    return net


def score_proxy(prep: Prepared, proxy: str | ProxySpec, options: ScoreOptions | None = None) -> ProxyScore:
    """One proxy on an already prepared model: ``options.repeat`` repeats seeded from ``options.seed``,
    mean and 95% interval, NaN/Inf -> NumericalError with a hint. What ``score`` runs for each proxy
    and what a search calls per candidate (prepare once, then this; no re-trace, no re-convert)."""
    spec = proxy if isinstance(proxy, ProxySpec) else get_proxy(proxy)
    opt = (options or ScoreOptions()).checked()
    dev, dt = opt.torch_device, opt.torch_dtype
    if prep.on_meta and spec.mutates and not spec.reinitializes:
        raise UsageError(f"{spec.name} needs real weights but {prep.name} was prepared on the meta device",
                         hint=f"prepare it with the proxies it will be scored with (prepare(model, '{spec.name}'))")
    kind = opt.graph or spec.graph
    template = prep.graph(kind)
    n = 1 if spec.deterministic_without_seed else opt.repeat
    ctx = ProxyContext(input_size=tuple(prep.input_size), batch_size=opt.batch_size, seed=opt.seed, device=dev,
                       dtype=dt, num_classes=opt.num_classes, bn_stat=opt.bn_stat, mixup_gamma=opt.mixup_gamma,
                       batches=opt.batches, extra=dict(opt.extra), shared=prep.shared)
    ctx.extra.setdefault("graph", kind)
    offset = zlib.crc32(spec.name.encode())
    head_c = feature_channels(template, prep.input_size) if (spec.needs_head and kind == "vcnn") else None
    values: list[float] = []
    t0 = time.perf_counter()
    for r in range(n):
        ctx.repeat_index = r
        if opt.progress is not None:
            opt.progress(spec.name, r, n)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            _seed_global(ctx, offset, dev)
            if not spec.mutates:
                net: nn.Module = template
            elif spec.reinitializes:
                net = prep.device_copy(spec.shared_pass or spec.name, kind, dev, dt)
            else:
                net = materialise(template, prep.on_meta, dev, dt)
            if head_c is not None:
                net = with_head(net, ctx.num_classes, in_features=head_c)
            v = float(spec.fn(net, ctx))
        if not math.isfinite(v) and not (spec.inf_is_rank and math.isinf(v)):
            raise NumericalError(
                f"{spec.name} score of {prep.name} is {v} (repeat {r + 1}/{n}, {DTYPE_NAMES[dt]}, "
                f"batch {opt.batch_size}, {'x'.join(map(str, prep.input_size))})",
                hint=_hint(spec, dt, opt.mixup_gamma, v))
        values.append(v)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    mean, ci, std = mean_ci95(values)
    return ProxyScore(spec.name, mean, ci, std, values, seconds, n, kind, spec.higher_is_better, spec.reference)


def score(model: Any, proxy: str | Sequence[str] = "zen", *, kwargs: dict[str, Any] | None = None,
          input_size: str | Sequence[int] | None = None, resolution: int | None = None,
          batch_size: int = DEFAULT_BATCH_SIZE, repeat: int = DEFAULT_REPEAT, seed: int = 0,
          bn_stat: str = "official", mixup_gamma: float = 1e-2, device: str | torch.device = "cpu",
          dtype: str | torch.dtype = "float32", num_classes: int = 1000, graph: str | None = None,
          batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None,
          extra: dict[str, Any] | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> ScoreResult:
    """Score ``model`` with one or more proxies (comma-separated or a list).

    ``model``: a spec string (``"torchvision.models.resnet50"``, ``"timm:resnet50"``,
    ``"file.py:build"``), an ``nn.Module``, a traced ``GraphModule``, a ``TracedModel``, a
    ``VCNNResult`` or a ``Prepared`` from :func:`prepare` (reuse it to score many times without
    re-tracing; :func:`score_proxy` scores one proxy of it). ``graph`` forces every proxy onto
    ``"original"`` or ``"vcnn"``. ``bn_stat``: ``official`` (the reference code's running_var) or
    ``batch`` (the paper's mini-batch variance). Same ``seed``, same numbers, bit for bit on one machine.
    ``result.value`` is the only proxy's value, else Zen's; ``result["phi"]`` any proxy's.
    """
    specs = parse_proxies(proxy)
    opt = ScoreOptions(batch_size, repeat, seed, bn_stat, mixup_gamma, device, dtype, num_classes, graph, batches,
                       dict(extra or {}), progress).checked()
    prep = prepare(model, specs, kwargs=kwargs, input_size=input_size, resolution=resolution, graph=graph)
    if prep.on_meta and any(s.mutates and not s.reinitializes for s in specs) and prep.spec is not None:
        prep = prepare(prep.spec, specs, kwargs=prep.kwargs, input_size=prep.input_size, graph=graph,
                       allow_meta=False)
    results = {spec.name: score_proxy(prep, spec, opt) for spec in specs}
    notes = list(prep.notes)
    if prep.on_meta and any(s.reinitializes for s in specs):
        notes.append("built on the meta device: every weight is set by the proxy's own Gaussian init")
    if any(s.name == "zen" for s in specs):
        notes.append("BN running statistics are reset at every repeat (the reference's standalone "
                     "script lets them carry over, which drifts its score upward with the repeat count)")
    return ScoreResult(
        model=prep.name, source=prep.source, input_size=tuple(prep.input_size),  # type: ignore[arg-type]
        batch_size=opt.batch_size, repeat=opt.repeat, seed=opt.seed, bn_stat=opt.bn_stat,
        mixup_gamma=opt.mixup_gamma, device=str(opt.device), dtype=dtype_name(opt.torch_dtype),
        num_classes=opt.num_classes, scores=results, conversion=prep.conversion, tracer=prep.tracer,
        timings={**prep.timings, "score": sum(s.seconds for s in results.values())}, notes=notes)


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_REPEAT", "Prepared", "ProxyScore", "ScoreOptions", "ScoreResult",
           "VCNNWithHead", "feature_channels", "materialise", "mean_ci95", "parse_proxies", "prepare", "score",
           "score_proxy", "uncovered_tensors", "with_head"]
