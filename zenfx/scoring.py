"""Scoring: resolve, trace and convert once; run each proxy on a private copy; repeat, seed, time.

``score(model, proxy="zen")`` is the library's headline call and what ``zenfx score`` renders.

Flow::

    spec / nn.Module / GraphModule / TracedModel / Prepared
      -> prepare()   load (on the meta device when every proxy re-initialises all weights),
                     trace, convert to VCNN once; timed
      -> per proxy   the graph its ProxySpec names (original or VCNN; ``graph=`` overrides),
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
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .errors import NumericalError, UsageError, ZenfxError
from .graph import BN_TYPES, CONV_TYPES, output_shape
from .loading import InputSize, LoadedModel, parse_input_size, resolve_model
from .pipeline import TracedModel
from .proxies.base import ProxyContext, ProxySpec, get_proxy
from .tracing import trace

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}

DEFAULT_REPEAT = 4
DEFAULT_BATCH_SIZE = 16


# --------------------------------------------------------------------------- options


def parse_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device '{device}' is not a device (cpu or cuda[:N])") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda requested but CUDA is not available on this machine",
                             hint="use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise UsageError(f"--device '{device}' is not supported (cpu or cuda)")
    return dev


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        dt = torch.float32
    elif isinstance(dtype, torch.dtype):
        dt = dtype
    else:
        key = str(dtype).strip().lower().replace("torch.", "")
        if key not in DTYPES:
            raise UsageError(f"--dtype '{dtype}' is not one of float32, float16, bfloat16")
        dt = DTYPES[key]
    if dt not in DTYPE_NAMES:
        raise UsageError(f"--dtype {dt} is not supported (float32, float16, bfloat16)")
    if dt == torch.float16 and device.type != "cuda":
        raise UsageError("--dtype float16 needs --device cuda (CPU half kernels are incomplete and slow)",
                         hint="use --dtype bfloat16 on CPU")
    return dt


def parse_proxies(proxy: str | Sequence[str]) -> list[ProxySpec]:
    names = [p for p in (proxy.split(",") if isinstance(proxy, str) else list(proxy))]
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise UsageError("no proxy given (e.g. --proxy zen or --proxy zen,params)")
    specs: list[ProxySpec] = []
    for n in names:
        s = get_proxy(n)
        if s.name not in [x.name for x in specs]:
            specs.append(s)
    return specs


# --------------------------------------------------------------------------- VCNN


def convert(gm: fx.GraphModule, name: str | None = None) -> Any:
    """VCNN form of a traced graph (``zenfx.vcnn.to_vcnn``, strict: a non-convertible model raises
    NotConvertibleError rather than scoring a graph that still has residuals or gates)."""
    from .vcnn import to_vcnn

    return to_vcnn(gm, name=name) if name else to_vcnn(gm)


# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """A model resolved, traced and (when a proxy needs it) converted: everything repeats reuse."""

    name: str
    source: str
    input_size: InputSize
    original: fx.GraphModule
    vcnn: Any = None  # VCNNResult
    on_meta: bool = False
    tracer: str = "unknown"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    spec: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    device_copies: dict[tuple[Any, ...], nn.Module] = field(default_factory=dict, repr=False)

    def device_copy(self, proxy: str, kind: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
        """The graph materialised on ``device`` for a proxy that overwrites every weight and
        statistic each repeat (zen, phi): built once per Prepared, so a search loop or a benchmark
        that scores one candidate many times pays the copy (deepcopy, recompile, allocation: tens
        of ms, most of a GPU score) once. Kept per proxy, since a proxy may change its copy."""
        key = (proxy, kind, str(device), dtype)
        net = self.device_copies.get(key)
        if net is None:
            net = _materialise(self.graph(kind), self.on_meta, device, dtype)
            self.device_copies[key] = net
        return net

    def graph(self, kind: str) -> fx.GraphModule:
        if kind == "original":
            return self.original
        if self.vcnn is None:
            t = time.perf_counter()
            self.vcnn = convert(self.original, self.name)
            self.timings["convert"] = self.timings.get("convert", 0.0) + time.perf_counter() - t
        return self.vcnn.gm

    @property
    def conversion(self) -> Optional[dict[str, Any]]:
        if self.vcnn is None:
            return None
        return self.vcnn.to_dict() if hasattr(self.vcnn, "to_dict") else {"verdict": str(getattr(self.vcnn, "verdict", "?"))}


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
            kwargs: dict[str, Any] | None = None, input_size: Sequence[int] | None = None,
            resolution: int | None = None, graph: str | None = None,
            allow_meta: bool = True) -> Prepared:
    """Resolve, trace and convert once. Builds on the meta device when every proxy asked for
    re-initialises all weights (and the graph it scores holds nothing else), which skips the
    constructor's weight init and makes tracing a fraction of the cost."""
    if isinstance(model, Prepared):
        return model
    if hasattr(model, "verdict") and isinstance(getattr(model, "gm", None), fx.GraphModule):
        # An already converted VCNNResult: score its graph; "original" proxies see it too.
        gm = model.gm
        size = _size(input_size, resolution, tuple(getattr(model, "input_size", ()) or gm.meta.get("zenfx_input_size") or (3, 224, 224)))
        return Prepared(getattr(model, "name", "") or type(gm).__name__, "vcnn", size, gm, vcnn=model,
                        on_meta=_is_meta(gm), tracer=str(getattr(model, "tracer", "unknown")),
                        notes=["scored a VCNNResult: proxies that use the original graph see the VCNN graph"])
    specs = _as_specs(proxies)
    kinds = {graph or s.graph for s in specs}
    need_real = any(s.mutates and not s.reinitializes for s in specs)
    timings: dict[str, float] = {}
    notes: list[str] = []

    if isinstance(model, TracedModel):
        size = _size(input_size, resolution, model.input_size)
        gm = model.gm
        if tuple(gm.meta.get("zenfx_input_size", ())) != tuple(size):
            t = time.perf_counter()
            gm = trace(gm, size)
            timings["trace"] = time.perf_counter() - t
        prep = Prepared(model.name, model.loaded.source, size, gm, tracer=str(gm.meta.get("zenfx_tracer", "unknown")),
                        timings=timings, notes=notes, spec=model.loaded.module, on_meta=_is_meta(gm))
    else:
        use_meta = allow_meta and isinstance(model, str) and not need_real
        t = time.perf_counter()
        loaded = resolve_model(model, kwargs, device="meta" if use_meta else None)
        timings["load"] = time.perf_counter() - t
        size = _size(input_size, resolution, loaded.default_input_size)
        t = time.perf_counter()
        gm = trace(loaded.module, size)
        timings["trace"] = time.perf_counter() - t
        prep = Prepared(loaded.name, loaded.source, size, gm, tracer=str(gm.meta.get("zenfx_tracer", "unknown")),
                        timings=timings, notes=notes, spec=model, kwargs=dict(kwargs or {}),
                        on_meta=_is_meta(gm))
    if "vcnn" in kinds:
        t = time.perf_counter()
        try:
            prep.vcnn = convert(prep.original, prep.name)
        except ZenfxError:
            raise
        except Exception as exc:
            if not prep.on_meta:
                raise
            if not isinstance(model, str):
                raise
            redo = prepare(model, specs, kwargs=kwargs, input_size=input_size, resolution=resolution,
                           graph=graph, allow_meta=False)
            redo.notes.insert(0, f"VCNN conversion failed on the meta device ({type(exc).__name__}); "
                                 "redone with real weights")
            return redo
        timings["convert"] = timings.get("convert", 0.0) + time.perf_counter() - t
    if prep.on_meta:  # read-only proxies (params, flops) never look at values: skip their graphs
        for kind in sorted({graph or s.graph for s in specs if s.mutates}):
            left = uncovered_tensors(prep.graph(kind))
            more = f" (+{len(left) - 3} more)" if len(left) > 3 else ""
            if left and not isinstance(model, str):
                raise UsageError(f"{prep.name} lives on the meta device but its {kind} graph holds tensors the "
                                 f"Gaussian init does not set ({', '.join(left[:3])}{more})",
                                 hint="build the model with real weights (on the CPU) before scoring it")
            if left:
                redo = prepare(model, specs, kwargs=kwargs, input_size=input_size, resolution=resolution,
                               graph=graph, allow_meta=False)
                redo.notes.insert(0, f"built with real weights: the {kind} graph holds tensors the Gaussian "
                                     f"init does not set ({', '.join(left[:3])}{more})")
                redo.timings = {k: redo.timings.get(k, 0.0) + prep.timings.get(k, 0.0)
                                for k in set(redo.timings) | set(prep.timings)}
                return redo
    return prep


def _as_specs(proxies: str | Sequence[str] | Sequence[ProxySpec]) -> list[ProxySpec]:
    if isinstance(proxies, str):
        return parse_proxies(proxies)
    out = []
    for p in proxies:
        out.extend([p] if isinstance(p, ProxySpec) else parse_proxies(p))
    return out


def _size(input_size: Sequence[int] | None, resolution: int | None, default: Sequence[int]) -> InputSize:
    if input_size is not None:
        dims = tuple(int(d) for d in input_size)
        if len(dims) != 3 or min(dims) <= 0:
            raise UsageError(f"input size {input_size} must be three positive integers C,H,W")
        return dims  # type: ignore[return-value]
    return parse_input_size(None, resolution, tuple(default))  # type: ignore[arg-type]


def _is_meta(m: nn.Module) -> bool:
    for t in list(m.parameters()) + list(m.buffers()):
        return t.device.type == "meta"
    return False


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
    size = tuple(input_size or (gm.meta.get("zenfx_input_size") if isinstance(gm, fx.GraphModule) else None) or (3, 224, 224))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with torch.no_grad():
        if _is_meta(gm):
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
    ci95: Optional[float]
    std: Optional[float]
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
    conversion: Optional[dict[str, Any]] = None
    tracer: str = "unknown"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def resolution(self) -> int | list[int]:
        _, h, w = self.input_size
        return h if h == w else [h, w]

    @property
    def value(self) -> float:
        """The value of the first proxy scored (the only one for ``score(m, "zen")``)."""
        return next(iter(self.scores.values())).value

    @property
    def ci95(self) -> Optional[float]:
        return next(iter(self.scores.values())).ci95

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


def mean_ci95(values: Sequence[float]) -> tuple[float, Optional[float], Optional[float]]:
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


def _materialise(template: nn.Module, on_meta: bool, device: torch.device, dtype: torch.dtype) -> nn.Module:
    net = copy.deepcopy(template)
    if on_meta:
        net = net.to_empty(device=device)
    else:
        net = net.to(device=device)
    if dtype != torch.float32:
        net = net.to(dtype=dtype)
    return net


def score(model: Any, proxy: str | Sequence[str] = "zen", *, kwargs: dict[str, Any] | None = None,
          input_size: Sequence[int] | None = None, resolution: int | None = None,
          batch_size: int = DEFAULT_BATCH_SIZE, repeat: int = DEFAULT_REPEAT, seed: int = 0,
          bn_stat: str = "official", mixup_gamma: float = 1e-2, device: str | torch.device = "cpu",
          dtype: str | torch.dtype = "float32", num_classes: int = 1000, graph: str | None = None,
          batches: Optional[Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]] = None,
          extra: dict[str, Any] | None = None,
          progress: Optional[Callable[[str, int, int], None]] = None) -> ScoreResult:
    """Score ``model`` with one or more proxies (comma-separated or a list).

    ``model``: a spec string (``"torchvision.models.resnet50"``, ``"timm:resnet50"``,
    ``"file.py:build"``), an ``nn.Module``, a traced ``GraphModule``, a ``TracedModel`` or a
    ``Prepared`` from :func:`prepare` (reuse it to score many times without re-tracing).
    ``graph`` forces every proxy onto ``"original"`` or ``"vcnn"``. ``bn_stat``: ``official``
    (the reference code's running_var) or ``batch`` (the paper's mini-batch variance).
    Same ``seed``, same numbers, bit for bit on one machine.
    """
    specs = parse_proxies(proxy) if isinstance(proxy, str) else _as_specs(proxy)
    dev = parse_device(device)
    dt = parse_dtype(dtype, dev)
    if bn_stat not in ("official", "batch"):
        raise UsageError(f"--bn-stat must be official or batch, got '{bn_stat}'")
    if graph not in (None, "original", "vcnn"):
        raise UsageError(f"graph must be original or vcnn, got '{graph}'")
    if int(repeat) < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    if int(batch_size) < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if not (mixup_gamma > 0 and math.isfinite(mixup_gamma)):
        raise UsageError(f"--mixup-gamma must be a positive number, got {mixup_gamma}")
    if num_classes < 1:
        raise UsageError(f"num_classes must be positive, got {num_classes}")

    if isinstance(model, fx.GraphModule) and "zenfx_tracer" in model.meta and input_size is None and resolution is None:
        input_size = tuple(model.meta.get("zenfx_input_size", ())) or None
    prep = prepare(model, specs, kwargs=kwargs, input_size=input_size, resolution=resolution, graph=graph)
    if prep.on_meta and any(s.mutates and not s.reinitializes for s in specs):
        prep = prepare(prep.spec, specs, kwargs=prep.kwargs, input_size=prep.input_size, graph=graph,
                       allow_meta=False)

    results: dict[str, ProxyScore] = {}
    for spec in specs:
        kind = graph or spec.graph
        template = prep.graph(kind)
        n = 1 if spec.deterministic_without_seed else int(repeat)
        ctx = ProxyContext(input_size=tuple(prep.input_size), batch_size=int(batch_size), seed=int(seed),
                           device=dev, dtype=dt, num_classes=int(num_classes), bn_stat=bn_stat,
                           mixup_gamma=float(mixup_gamma), batches=batches, extra=dict(extra or {}))
        ctx.extra.setdefault("graph", kind)
        offset = zlib.crc32(spec.name.encode())
        head_c = feature_channels(template, prep.input_size) if (spec.needs_head and kind == "vcnn") else None
        values: list[float] = []
        forks = [dev] if dev.type == "cuda" else []
        t0 = time.perf_counter()
        for r in range(n):
            ctx.repeat_index = r
            if progress is not None:
                progress(spec.name, r, n)
            with torch.random.fork_rng(devices=forks):
                _seed_global(ctx, offset, dev)
                if not spec.mutates:
                    net: nn.Module = template
                elif spec.reinitializes:
                    net = prep.device_copy(spec.name, kind, dev, dt)
                else:
                    net = _materialise(template, prep.on_meta, dev, dt)
                if head_c is not None:
                    net = with_head(net, ctx.num_classes, in_features=head_c)
                v = float(spec.fn(net, ctx))
            if not math.isfinite(v):
                raise NumericalError(
                    f"{spec.name} score of {prep.name} is {v} (repeat {r + 1}/{n}, "
                    f"{DTYPE_NAMES[dt]}, batch {batch_size}, {'x'.join(map(str, prep.input_size))})",
                    hint=_hint(spec, dt, mixup_gamma, v))
            values.append(v)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        mean, ci, std = mean_ci95(values)
        results[spec.name] = ProxyScore(spec.name, mean, ci, std, values, seconds, n, kind,
                                        spec.higher_is_better, spec.reference)

    notes = list(prep.notes)
    if prep.on_meta and any(s.reinitializes for s in specs):
        notes.append("built on the meta device: every weight is set by the proxy's own Gaussian init")
    if any(s.name == "zen" for s in specs):
        notes.append("BN running statistics are reset at every repeat (the reference's standalone "
                     "script lets them carry over, which drifts its score upward with the repeat count)")
    return ScoreResult(
        model=prep.name, source=prep.source, input_size=tuple(prep.input_size),  # type: ignore[arg-type]
        batch_size=int(batch_size), repeat=int(repeat), seed=int(seed), bn_stat=bn_stat,
        mixup_gamma=float(mixup_gamma), device=str(dev), dtype=DTYPE_NAMES[dt], num_classes=int(num_classes),
        scores=results, conversion=prep.conversion, tracer=prep.tracer,
        timings={**prep.timings, "score": sum(s.seconds for s in results.values())}, notes=notes)


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_REPEAT", "Prepared", "ProxyScore", "ScoreResult", "VCNNWithHead",
           "convert", "feature_channels", "mean_ci95", "parse_device", "parse_dtype", "parse_proxies",
           "prepare", "score", "uncovered_tensors", "with_head"]
