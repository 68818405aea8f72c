"""Evaluate one candidate genome: build, cheap-first budget figures, then the proxy. Runs in a worker.

Per candidate (a genome dict in, a plain dict out)::

    build    zenfx.build(genome) on the meta device when the proxy re-initialises every weight
             (zen, phi) or only reads the net (params, flops): no memory, no constructor init
    params   parameters of the built module                              (budget: params)
    trace    zenfx.scoring.prepare: trace once, convert to VCNN once
    macs     FlopCounterMode on the meta graph                           (budget: macs)
    depth    convolutions left on the VCNN main path                     (budget: max-depth)
    memory   activation peak of one image, float32, from the traced shapes (budget: memory)
    latency  zenfx.cost.predictor sum over the graph's operators         (budget: latency)
             (a table lookup; only operators never seen on this machine are timed, once)
    score    zenfx.score on the Prepared (the VCNN graph for zen): no re-trace, no re-convert

A failure at any stage is reported with the stage and a one-line reason; the run goes on.
Worker state (:class:`WorkerState`, built once per worker by :func:`init_worker`) holds the seed's
space (cached by zenfx.space, so mutation and replay start warm), the proxy spec, the latency table
and the data provider.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from .budget import Budgets, check
from .evolution import one_line

# Figures computed for every candidate that gets this far, budget or not (the history and the
# score-vs-cost plots want them): params need only the module; MACs, depth and memory come from
# the graph that scoring traces and converts anyway (about a millisecond each). Memory only when
# budgeted: it needs every node's channels, i.e. a fresh trace.
ALWAYS = ("params", "macs", "depth")


@dataclass
class EvalSettings:
    """What a worker needs to evaluate candidates: a picklable subset of the run config."""

    proxy: str = "zen"
    batch_size: int = 64
    seed: int = 0
    bn_stat: str = "official"
    mixup_gamma: float = 1e-2
    num_classes: int = 1000
    data: str | None = None
    budgets: dict[str, Any] = field(default_factory=dict)
    seed_genome: dict[str, Any] | None = None  # warmed up in init_worker
    seed_space: dict[str, Any] | None = None  # genome.seed_space_document: a worker adopts it instead of probing
    threads: int = 1
    device: str = "cpu"  # where candidates are scored (figures and budgets never need a device)
    # A file seed's source by content hash ({sha256: {"name", "text"}}): a worker on a machine
    # without the file (a Ray node, a deleted temp folder) imports the seed from this.
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Template:
    """The traced and the VCNN graph of one topology (the seed's module hierarchy after depth edits). Width
    and kernel edits change modules, never the graph, and keep every spatial shape (kernel edits
    adjust padding), so a candidate of the same topology reuses both graphs with its own modules
    swapped in instead of tracing and converting again (about 0.2 s of a CIFAR candidate's 0.5 s)."""

    original: Any  # fx.GraphModule, traced on meta with shapes at batch 1
    vcnn: Any  # fx.GraphModule, the converted graph
    depth: int
    modules: tuple[str, ...] = ()  # call_module targets the candidate's own module replaces
    tensors: tuple[str, ...] = ()  # get_attr targets the candidate's own parameter or buffer replaces
    norms: tuple[tuple[str, tuple[str, ...]], ...] = ()  # BatchNorms the conversion made: (target, tensors
    # read from the candidate), rebuilt at the candidate's width
    unsafe: str | None = None  # why reuse could differ from a fresh trace + convert: never reused then


MAX_TEMPLATES = 64


@dataclass
class WorkerState:
    settings: EvalSettings
    budgets: Budgets
    spec: Any  # ProxySpec
    on_meta: bool
    batches: Any = None
    latency_table: Any = None
    options: Any = None  # zenfx.scoring.ScoreOptions, checked once
    templates: dict[Any, Template] = field(default_factory=dict)  # traced + converted graphs per topology
    init_seconds: float = 0.0
    fast: bool = True  # reuse a topology's traced/converted graphs for width/kernel-only differences
    # a rank-aggregated objective ("az", "zen+zico"): the member proxies, each scored per candidate
    # (``out["values"]``); the search ranks them within its pool. Empty for a single proxy.
    members: list[Any] = field(default_factory=list)

    @property
    def specs(self) -> list[Any]:
        return self.members or [self.spec]


def init_worker(settings: EvalSettings | dict[str, Any]) -> WorkerState:
    """Imports done, one torch thread, seed space probed and cached, proxy resolved."""
    import torch

    t0 = time.perf_counter()
    s = settings if isinstance(settings, EvalSettings) else EvalSettings(**settings)
    torch.set_num_threads(max(1, int(s.threads)))
    from ..proxies.aggregate import is_aggregate, members_of
    from ..proxies.base import get_proxy

    members = [get_proxy(m) for m in members_of(s.proxy)] if is_aggregate(s.proxy) else []
    spec = members[0] if members else get_proxy(s.proxy)
    on_meta = all(sp.reinitializes or not sp.mutates for sp in (members or [spec]))
    state = WorkerState(s, Budgets.from_dict(s.budgets), spec, on_meta, members=members)
    if s.sources:
        from ..loading import register_source

        for sha, src in s.sources.items():
            register_source(sha, src["name"], src["text"])
    if s.data and any(sp.needs_data for sp in state.specs):
        from ..data import npz_batches

        state.batches = npz_batches(s.data, batch_size=s.batch_size)
    if s.seed_genome is not None:
        from ..genome import Genome, current_state

        g = Genome.from_dict(s.seed_genome)
        try:
            if s.seed_space is not None:
                from ..genome import adopt_seed_space

                adopt_seed_space(g, s.seed_space)
            current_state(g)  # probe once per worker (unless adopted); cached for every later mutate / build
        except Exception:  # noqa: BLE001 - the candidate that needs it reports the failure
            pass
    state.init_seconds = time.perf_counter() - t0
    return state


def init_scoring_worker(settings: EvalSettings | dict[str, Any]) -> WorkerState:
    """A worker's ``init`` (the executor's): ``init_worker``, then the scoring device checked where
    the worker runs (a Ray worker's GPU need not exist on the driver's machine), then the seed
    evaluated once and thrown away. That first evaluation pays the one-off costs (torch.fx's lazy
    imports, the first trace and conversion, a CUDA context: ~1 s on a CPU) while the worker
    starts, not inside the first candidate's time, and leaves the seed's topology graphs cached; a
    candidate's result is the same with or without it (tests/test_search.py)."""
    s = settings if isinstance(settings, EvalSettings) else EvalSettings(**settings)
    from ..devices import parse_device

    parse_device(s.device)
    state = init_worker(s)
    if s.seed_genome is not None:
        t0 = time.perf_counter()
        out = evaluate(state, s.seed_genome, stop_early=False)
        state.init_seconds += time.perf_counter() - t0
        if out["status"] == "failed" and out["stage"] == "build":
            # The seed cannot even be built where this worker runs (a module-path seed whose package
            # is not installed there, ...): every candidate would fail the same way, so the run
            # stops with this one line instead.
            from ..errors import UsageError

            raise UsageError(f"the seed cannot be built on this worker: {out['error']}")
    return state


def evaluate_task(state: WorkerState, task: dict[str, Any]) -> dict[str, Any]:
    """The executor's ``fn``: evaluate one candidate; never raises for a candidate's own failure."""
    return evaluate(state, task["genome"], score=task.get("score", True), stop_early=task.get("stop_early", True),
                    repeats=int(task.get("repeats", 1)), draw=task.get("draw"))


class _Stage:
    """Which stage is running, for the failure report, and its wall time."""

    def __init__(self) -> None:
        self.name = "build"
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        self.times[self.name] = self.times.get(self.name, 0.0) + now - self._t
        self.name, self._t = name, now

    def close(self) -> dict[str, float]:
        self.enter("done")
        self.times.pop("done", None)
        return {k: round(v, 6) for k, v in self.times.items()}


def evaluate(state: WorkerState, genome_dict: dict[str, Any], *, score: bool = True,
             stop_early: bool = True, repeats: int = 1, draw: int | None = None) -> dict[str, Any]:
    """Figures, verdict and score of one genome (a dict ready for the history). ``repeats`` > 1: the
    mean of that many seeded repeats (the first is the one-repeat score), with ``values``, as
    ``zenfx score -n REPEATS`` gives it: what crowning a new best rescores. ``draw``: the scoring
    seed of this candidate's own draw (``--score-draws per-candidate``) instead of the run's."""
    cpu0 = time.process_time()
    stage = _Stage()
    out: dict[str, Any] = {"status": "failed", "figures": {}, "rejected_by": None, "score": None, "error": None,
                           "stage": None}
    try:
        ev = _Evaluation(state, genome_dict, stage)
        verdict = check(state.budgets, ev.figure, always=ALWAYS, stop_early=stop_early)
        out["figures"] = {k: v for k, v in verdict.figures.items()}
        if not verdict.ok:
            out.update(status="rejected", rejected_by=verdict.rejected_by)
        elif score:
            stage.enter("score")
            c0 = time.process_time()
            value, proxy_s = ev.score(repeats, draw)
            out["proxy_seconds"] = proxy_s
            out["proxy_cpu_seconds"] = time.process_time() - c0
            if isinstance(value, dict):  # an aggregate's members: the search ranks them within its pool
                out.update(status="scored", score=0.0, values=_member_values(state, value))
            elif not math.isfinite(value):
                raise FloatingPointError(f"{state.spec.name} score is {value}")
            else:
                out.update(status="scored", score=value)
                if repeats > 1:
                    out["repeat_values"] = list(ev.values)
        else:
            out.update(status="ok")
    except Exception as exc:  # noqa: BLE001 - recorded with its stage; the search goes on
        out.update(status="failed", error=one_line(exc), stage=failed_stage(exc, stage.name))
        code = getattr(exc, "exit_code", None)
        if code is not None:
            out["exit_code"] = int(code)  # what a CLI run on this genome alone would exit with
    out["timings"] = stage.close()
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def failed_stage(exc: BaseException, running: str) -> str:
    """The stage a failure belongs to: ``prepare`` traces and converts in one call (stage "trace"),
    so a model that traces but has no VCNN form is named by its error's class."""
    from ..errors import NotConvertibleError, NotTraceableError

    if isinstance(exc, NotConvertibleError):
        return "convert"
    if isinstance(exc, NotTraceableError):
        return "trace"
    return running


class _Evaluation:
    """Lazily computed figures of one genome, sharing the built module and the prepared graphs."""

    def __init__(self, state: WorkerState, genome_dict: dict[str, Any], stage: _Stage) -> None:
        from ..genome import Genome, build

        self.state = state
        self.stage = stage
        self.genome = Genome.from_dict(genome_dict)
        self.input_size = tuple(int(x) for x in self.genome.input_size)
        self.module = build(self.genome, device="meta" if state.on_meta else None)
        self._prep: Any = None
        b = state.budgets
        self.topo = topology_key(self.genome, self.module)
        usable = (state.fast and state.on_meta and all(sp.graph == "vcnn" and not sp.needs_head for sp in state.specs)
                  and b.memory is None and b.latency is None)
        self.template: Template | None = state.templates.get(self.topo) if usable else None
        self._remember = usable and self.template is None
        if self.template is not None and self.template.unsafe is not None:
            self.template = None  # known not to be reusable: a fresh trace + convert, every time

    def prep(self) -> Any:
        if self._prep is None:
            if self.template is not None:
                self.stage.enter("reuse")
                self._prep = prepared_from_template(self.template, self.module, self.input_size)
                if self._prep is not None:
                    return self._prep
            from ..scoring import prepare

            self.stage.enter("trace")
            self._prep = prepare(self.module, self.state.specs, input_size=self.input_size)
            if self._remember:
                self.stage.enter("convert")
                vcnn = self._prep.graph("vcnn")
                from ..graph import is_conv

                if len(self.state.templates) >= MAX_TEMPLATES:
                    self.state.templates.pop(next(iter(self.state.templates)))
                self.state.templates[self.topo] = make_template(self._prep.original, vcnn, self.module,
                                                                sum(1 for n in vcnn.graph.nodes if is_conv(vcnn, n)))
        return self._prep

    def figure(self, name: str) -> float | None:
        return getattr(self, f"_{name}")()

    def _params(self) -> int:
        self.stage.enter("params")
        seen: set[int] = set()
        total = 0
        for p in self.module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        return total

    def _macs(self) -> int:
        if self.template is not None:
            self.stage.enter("macs")
            return graph_macs(self.template.original, self.input_size, modules=self.module)
        prep = self.prep()
        self.stage.enter("macs")
        return graph_macs(prep.original, self.input_size)

    def _depth(self) -> int | None:
        if self.template is not None:
            return self.template.depth
        prep = self.prep()
        self.stage.enter("convert")
        from ..errors import NotConvertibleError
        from ..graph import is_conv

        try:
            gm = prep.graph("vcnn")
        except NotConvertibleError:
            if not self.depth_optional():
                raise
            return None  # recorded as no depth: a proxy on the original graph still scores it
        return sum(1 for n in gm.graph.nodes if is_conv(gm, n))

    def depth_optional(self) -> bool:
        """Whether a model with no VCNN form may still be a candidate: nothing budgets its depth and
        no proxy scores the VCNN graph (az, zico, params... score the original network; an NB201 cell
        whose two equal branches make the residual ambiguous is still a cell they can rank)."""
        return self.state.budgets.depth is None and all(sp.graph != "vcnn" for sp in self.state.specs)

    def _memory(self) -> int:
        prep = self.prep()
        self.stage.enter("memory")
        from ..cost.memory import activation_memory

        return activation_memory(prep.original).peak_bytes

    def _latency(self) -> float:
        prep = self.prep()
        self.stage.enter("latency")
        return predicted_latency(self.state, prep.original, self.genome, self.input_size)

    def score(self, repeats: int = 1, draw: int | None = None) -> tuple[float | dict[str, float], float]:
        prep = self.prep()
        self.stage.enter("score")
        s = self.state.settings
        from ..scoring import ScoreOptions, score_proxy

        if self.state.options is None:
            self.state.options = ScoreOptions(batch_size=s.batch_size, repeat=1, seed=s.seed, bn_stat=s.bn_stat,
                                              mixup_gamma=s.mixup_gamma, num_classes=s.num_classes,
                                              device=s.device, batches=self.state.batches).checked()
        options = self.state.options
        if repeats > 1 or draw is not None:
            from dataclasses import replace

            options = replace(options, repeat=repeats, seed=s.seed if draw is None else int(draw))
        if self.state.members:  # one Prepared for all members: AZ-NAS's three share one pass
            scores = [score_proxy(prep, sp, options) for sp in self.state.members]
            return {ps.proxy: float(ps.value) for ps in scores}, float(sum(ps.seconds for ps in scores))
        ps = score_proxy(prep, self.state.spec, options)
        self.values = list(ps.values)
        return float(ps.value), float(ps.seconds)


def _member_values(state: WorkerState, values: dict[str, float]) -> dict[str, float | None]:
    """Members' values for the history: a NaN, or an inf the proxy does not rank, fails the candidate;
    -inf (a rank) is stored as None, which ranks lowest exactly as -inf does."""
    for sp in state.members:
        v = values[sp.name]
        if math.isnan(v) or (math.isinf(v) and not (sp.inf_is_rank and v < 0)):
            raise FloatingPointError(f"{sp.name} score is {v}")
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


_MATMUL_NAMES = ("matmul", "bmm", "mm", "addmm", "baddbmm", "linear", "conv", "einsum", "scaled_dot_product",
                 "multi_head_attention", "lstm", "gru", "rnn")


def graph_macs(gm: Any, input_size: tuple[int, ...], modules: Any = None) -> int:
    """MACs of one image from the shapes already on the traced graph (batch 1): conv and Linear
    modules only, which is exactly what FlopCounterMode counts when those are the graph's only
    matmul-like ops; any functional matmul/conv or opaque leaf falls back to ``count_macs``. A
    FlopCounterMode pass costs about a third of a small CIFAR candidate's whole score; this, ~1 ms.

    ``modules``: read the layers from this module instead of ``gm`` (a candidate of ``gm``'s
    topology: spatial sizes come from ``gm``'s shapes, channels from the candidate's layers)."""
    from torch import nn

    from ..cost.flops import count_macs
    from ..graph import shape

    total = 0
    owner = gm if modules is None else modules
    for n in gm.graph.nodes:
        if n.op == "call_module":
            m = owner.get_submodule(str(n.target))
            out = shape(n)
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and out is not None and out[0] == 1:
                k = math.prod(m.kernel_size)
                total += m.out_channels * math.prod(out[2:]) * (m.in_channels // m.groups) * k
            elif isinstance(m, nn.Linear) and out is not None and out[0] == 1:
                total += math.prod(out[:-1]) * m.in_features * m.out_features
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) or len(list(m.children())):
                return count_macs(gm if modules is None else modules, input_size)
        elif n.op in ("call_function", "call_method"):
            name = getattr(n.target, "__name__", str(n.target)).lower()
            if any(k in name for k in _MATMUL_NAMES):
                return count_macs(gm if modules is None else modules, input_size)
    return total


def topology_key(genome: Any, module: Any) -> str:
    """What fixes the traced graph: the seed (spec, arguments, input size) and the built module's
    hierarchy -- every module path and class, without channel counts or kernel sizes. Two depth-edit
    histories that reach the same blocks share one template."""
    import hashlib
    import json

    names = "\n".join(f"{p}|{type(m).__qualname__}" for p, m in module.named_modules())
    head = json.dumps([genome.seed_name(), genome.kwargs, list(genome.input_size)], sort_keys=True, default=str)
    return head + hashlib.sha256(names.encode()).hexdigest()[:16]


# Layers that hold no tensor and no channel count: a conversion may create them (an activation made
# ReLU, a pooling kept) and a candidate of any width can share the template's.
_STATELESS_MODULES = ("torch.nn.modules.activation", "torch.nn.modules.pooling", "torch.nn.modules.dropout",
                      "torch.nn.modules.flatten")


def _stateless(m: Any) -> bool:
    from torch import nn

    if next(iter(m.parameters()), None) is not None or next(iter(m.buffers()), None) is not None:
        return False
    return isinstance(m, nn.Identity) or type(m).__module__ in _STATELESS_MODULES


def _lookup(root: Any, target: str, kind: str) -> Any:
    try:
        return getattr(root, f"get_{kind}")(target)
    except AttributeError:
        return None


def _layout(m: Any) -> tuple[Any, ...]:
    """What a layer is, as far as a conversion could have changed it: its class, its printed
    configuration (children included), and the names and shapes of its tensors."""
    tensors = [(n, tuple(t.shape)) for n, t in [*m.named_parameters(), *m.named_buffers()]]
    return type(m), repr(m), tuple(tensors)


def make_template(original: Any, vcnn: Any, module: Any, depth: int) -> Template:
    """The template of ``module``'s topology, with the plan that makes reuse exact: every layer the
    converted graph calls and every tensor it reads must be the candidate's own (the same layer the
    conversion copied, unchanged) or hold no state at all (an activation it made ReLU). A layer or
    tensor the conversion *created* or *rewrote* (a LayerNorm made BatchNorm, a functional
    batch_norm made a module, a layer changed in place) keeps the seed's width in a reused graph,
    so such a topology is marked unsafe and every candidate of it is traced and converted afresh."""
    mods: list[str] = []
    tensors: list[str] = []
    norms: list[tuple[str, tuple[str, ...]]] = []
    unsafe = None
    for n in vcnn.graph.nodes:
        if n.op == "call_module":
            target = str(n.target)
            leaf = vcnn.get_submodule(target)
            mine = _lookup(module, target, "submodule")
            if mine is not None and _layout(mine) == _layout(leaf):
                mods.append(target)
            elif (rebind := _made_norm(leaf, target, module)) is not None:
                norms.append((target, rebind))
            elif not _stateless(leaf):
                unsafe = f"the conversion made or changed layer {target} ({type(leaf).__name__})"
                break
        elif n.op == "get_attr":
            target = str(n.target)
            kind = "parameter" if _lookup(vcnn, target, "parameter") is not None else "buffer"
            ours, mine = _lookup(vcnn, target, kind), _lookup(module, target, kind)
            if mine is None or ours is None or tuple(mine.shape) != tuple(ours.shape):
                unsafe = f"the conversion made or changed tensor {target}"
                break
            tensors.append(target)
    return Template(original, vcnn, depth, tuple(mods), tuple(tensors), tuple(norms), unsafe)


_FRESH_BN = ("running_mean", "running_var", "num_batches_tracked")  # what a new BatchNorm starts with


def _made_norm(leaf: Any, target: str, module: Any) -> tuple[str, ...] | None:
    """A BatchNorm the conversion made (from a LayerNorm or GroupNorm, or a functional batch_norm
    such as timm's BatchNormAct2d) that a candidate's width can rebuild: the tensors it shares, by
    name and shape, with the candidate's layer at ``target`` (rebound), the rest what a new
    BatchNorm starts with. None when it is anything else."""
    from torch import nn

    if not isinstance(leaf, nn.modules.batchnorm._BatchNorm) or any(True for _ in leaf.children()):
        return None
    rebind: list[str] = []
    for name, t in [*leaf.named_parameters(recurse=False), *leaf.named_buffers(recurse=False)]:
        kind = "parameter" if name in leaf._parameters else "buffer"
        mine = _lookup(module, f"{target}.{name}", kind)
        if mine is not None and tuple(mine.shape) == tuple(t.shape):
            rebind.append(name)
        elif name not in _FRESH_BN:
            return None
    if not any(getattr(leaf, n).dim() == 1 for n in rebind):
        return None  # nothing of the candidate's says the width
    return tuple(rebind)


def _rebuilt_norm(leaf: Any, target: str, rebind: tuple[str, ...], module: Any) -> Any:
    """``leaf`` made again at the candidate's width, as the conversion makes it, with the
    candidate's tensors at ``rebind``; None when the candidate lacks one."""
    mine = {}
    for name in rebind:
        t = _lookup(module, f"{target}.{name}", "parameter" if name in leaf._parameters else "buffer")
        if t is None:
            return None
        mine[name] = t
    width = next(t.shape[0] for t in mine.values() if t.dim() == 1)
    new = type(leaf)(width, eps=leaf.eps, momentum=leaf.momentum, affine=leaf.affine,
                     track_running_stats=leaf.track_running_stats, device="meta")
    for name, t in mine.items():
        if name in new._parameters:
            new._parameters[name] = t
        else:
            new._buffers[name] = t
    new.train(leaf.training)
    return new


def prepared_from_template(t: Template, module: Any, input_size: tuple[int, ...]) -> Any:
    """A Prepared whose VCNN graph is the template's with the candidate's layers and tensors swapped
    in (``make_template``'s plan): a deep copy of the template (so module order, and with it the
    Gaussian init's draw order, is exactly what a fresh conversion gives). None when the candidate
    lacks one of them: the caller traces and converts afresh."""
    import copy

    from ..scoring import Prepared
    from ..vcnn.report import VCNNResult

    vcnn = copy.deepcopy(t.vcnn)
    for target in t.modules:
        mine = _lookup(module, target, "submodule")
        if mine is None or type(mine) is not type(vcnn.get_submodule(target)):
            return None
        parent, _, name = target.rpartition(".")
        setattr(vcnn.get_submodule(parent) if parent else vcnn, name, mine)
    for target, rebind in t.norms:
        new = _rebuilt_norm(vcnn.get_submodule(target), target, rebind, module)
        if new is None:
            return None
        parent, _, name = target.rpartition(".")
        setattr(vcnn.get_submodule(parent) if parent else vcnn, name, new)
    for target in t.tensors:
        parent, _, name = target.rpartition(".")
        owner = vcnn.get_submodule(parent) if parent else vcnn
        is_param = name in owner._parameters
        mine = _lookup(module, target, "parameter" if is_param else "buffer")
        if mine is None:
            return None
        if is_param:
            owner._parameters[name] = mine
        else:
            owner._buffers[name] = mine
    res = VCNNResult(vcnn, name=type(module).__name__, input_size=tuple(input_size))
    return Prepared(type(module).__name__, "search", tuple(input_size), vcnn, vcnn=res, on_meta=True)  # type: ignore[arg-type]


def predicted_latency(state: WorkerState, gm: Any, genome: Any, input_size: tuple[int, ...]) -> float:
    """Predicted seconds per batch. A lookup in the per-operator table; when the graph has operators
    never measured on this machine, a real-weight copy of the candidate is built and only those
    operators are timed (once, then cached on disk for every later candidate and run)."""
    from ..cost.predictor import LatencyTable, predict_latency
    from ..errors import UsageError

    b = state.budgets
    if state.latency_table is None:
        state.latency_table = LatencyTable.for_setting(b.latency_device, b.latency_dtype, b.latency_batch,
                                                       threads=state.settings.threads)
    kw = dict(batch_size=b.latency_batch, device=b.latency_device, dtype=b.latency_dtype,
              threads=state.settings.threads, table=state.latency_table)
    try:
        return predict_latency(gm, input_size, measure_missing=False, **kw).total_s
    except UsageError:
        from ..genome import build

        real = build(genome)
        return predict_latency(real, input_size, measure_missing=True, **kw).total_s


__all__ = ["EvalSettings", "WorkerState", "evaluate", "evaluate_task", "init_scoring_worker", "init_worker",
           "predicted_latency"]
