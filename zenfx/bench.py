"""Proxy-correlation benchmark: score a seeded sample of NAS-Bench-201 / NATS-Bench-SSS
architectures with zero-shot proxies and rank-correlate the scores with trained accuracy.

Engine behind ``zenfx bench proxies``. Flow::

    truth CSV (user's copy) -> seeded sample (a prefix of one permutation: the N=100 sample is
    the first 100 of the N=1000 sample with the same seed) -> per architecture: build the network
    (default PyTorch init, seeded per architecture), run each proxy on a private copy, time it
    -> one JSON line per architecture appended to OUT/scores.jsonl as soon as it finishes
    (resumable: finished architectures are skipped) -> Kendall tau and Spearman rho per proxy
    (scipy.stats) next to the published figures read from the README next to the truth file.

Graphs. The benchmark scores every proxy on the cell network as built (cell-internal sums and
ResBlock shortcuts kept), which is what the published NB201/NATS evaluations of every proxy do
(the zero-cost-nas, NASWOT and ZiCo benchmark scripts all call the xautodl network directly).
The Zen-Score needs the pre-GAP feature map, so it gets the network cut before global pooling
(stem, cells, final BN-ReLU); it re-initialises the weights itself. Collapsing the cells to one
"main branch" (zenfx's generic VCNN conversion) would remove the very topology NB201 varies.

Data. Data-dependent proxies run on Gaussian inputs with random labels unless a batch file is
given; the result marks them as such, because the published figures used CIFAR batches.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import UsageError
from .proxies.base import ProxyContext, ProxySpec, get_proxy
from .runlog import JsonlLog, atomic_write_json

SPACES = ("nb201", "nats-sss")
TRUTH_FILES = {"nb201": "nasbench201.csv", "nats-sss": "natsbench_sss.csv"}
DATASETS = {"nb201": ("cifar10", "cifar100", "imagenet16-120"), "nats-sss": ("cifar100", "imagenet16-120")}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}
# The resolution each benchmark trained at: CIFAR 32x32, ImageNet16-120 16x16 (NB201/NATS-Bench).
NATIVE_RESOLUTION = {"cifar10": 32, "cifar100": 32, "imagenet16-120": 16}
DEFAULT_PROXIES = ("params", "flops", "synflow", "zen", "naswot", "grad_norm", "snip", "fisher", "jacob_cov",
                   "grasp", "zico")
# README row labels -> registry names
_PUBLISHED_NAMES = {"#params": "params", "params": "params", "flops": "flops", "grad_norm": "grad_norm",
                    "snip": "snip", "grasp": "grasp", "fisher": "fisher", "synflow": "synflow",
                    "naswot": "naswot", "zen-score": "zen", "zen": "zen", "zico": "zico",
                    "jacob_cov": "jacob_cov", "az": "az", "az-nas": "az"}
# README column headers (lower case) per (space, dataset); the first one present is read.
_PUBLISHED_COLS = {("nb201", "cifar10"): ("nb201 c10",), ("nb201", "cifar100"): ("nb201 c100",),
                   ("nats-sss", "cifar100"): ("sss c100",),
                   ("nb201", "imagenet16-120"): ("nb201 in16", "nb201 in16-120", "nb201 imagenet16-120"),
                   ("nats-sss", "imagenet16-120"): ("sss in16", "sss in16-120", "sss imagenet16-120")}


@dataclass
class BenchConfig:
    space: str
    dataset: str
    sample: int
    seed: int = 0
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    batch_size: int = 64
    resolution: int | None = None  # None: the dataset's own (32 for CIFAR, 16 for ImageNet16-120)
    data: str | None = None  # .npz batch file; None: Gaussian inputs + random labels
    fast_flops: bool = True  # flops by Conv/Linear hooks (== count_macs here) instead of FlopCounterMode
    device: str = "cpu"  # where the cells are scored (cuda: one GPU per Ray worker)
    # rank-aggregated objectives ("az", "zen+zico") asked for: their members are scored (in
    # ``proxies``) and the aggregate over the scored sample is correlated next to them
    aggregates: tuple[str, ...] = ()

    @property
    def input_size(self) -> tuple[int, int, int]:
        r = self.resolution or NATIVE_RESOLUTION.get(self.dataset, 32)
        return (3, r, r)

    def key(self) -> dict[str, Any]:
        """What must match for results in an output folder to be reused."""
        key = {"space": self.space, "dataset": self.dataset, "seed": self.seed, "batch_size": self.batch_size,
               "resolution": self.resolution, "data": self.data}
        if self.device != "cpu":  # GPU sums differ in the last bits; CPU runs keep their old key
            key["device"] = self.device
        return key


@dataclass
class Arch:
    index: int
    arch: str
    accuracy: float


@dataclass
class ProxyCorrelation:
    proxy: str
    n: int
    kendall_tau: float | None
    spearman_rho: float | None
    published_tau: float | None
    published_rho: float | None
    mean_seconds: float | None
    gaussian_data: bool
    failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    config: BenchConfig
    archs_total: int
    archs_scored: int
    correlations: list[ProxyCorrelation]
    mean_seconds_per_arch: float | None
    out: str | None
    wall_seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "archs_total": self.archs_total, "archs_scored": self.archs_scored,
                "mean_seconds_per_arch": self.mean_seconds_per_arch, "out": self.out,
                "wall_seconds": self.wall_seconds, "notes": list(self.notes),
                "correlations": [c.to_dict() for c in self.correlations]}


# --------------------------------------------------------------------------- ground truth


def truth_file(space: str, truth: str | os.PathLike[str]) -> Path:
    p = Path(truth)
    if p.is_dir():
        p = p / TRUTH_FILES[space]
    if not p.is_file():
        raise UsageError(f"ground-truth file {p} not found",
                         hint=f"--truth takes the folder holding {TRUTH_FILES[space]} or the file itself")
    return p


def truth_column(dataset: str) -> str:
    """The accuracy column of ``dataset`` in a truth CSV: ``cifar10_test``, ``imagenet16_120_test``."""
    return dataset.replace("-", "_") + "_test"


def load_truth(space: str, dataset: str, truth: str | os.PathLike[str]) -> list[Arch]:
    check_space(space, dataset)
    path = truth_file(space, truth)
    col = truth_column(dataset)
    key = "arch_str" if space == "nb201" else "channels"
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or col not in reader.fieldnames or key not in reader.fieldnames:
            raise UsageError(f"{path} lacks columns {key!r} and {col!r} (has {reader.fieldnames})")
        for row in reader:
            out.append(Arch(int(row["index"]), row[key], float(row[col])))
    return out


def check_space(space: str, dataset: str) -> None:
    if space not in SPACES:
        raise UsageError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    if dataset not in DATASETS[space]:
        raise UsageError(f"--dataset {dataset!r} is not available for {space} (choose {', '.join(DATASETS[space])})")


def published_figures(space: str, dataset: str, truth: str | os.PathLike[str]) -> dict[str, tuple[float, float]]:
    """Kendall tau / Spearman rho per proxy from the markdown table in the README next to the truth
    file ({} when there is none)."""
    p = Path(truth)
    readme = (p if p.is_dir() else p.parent) / "README.md"
    if not readme.is_file():
        return {}
    wants = _PUBLISHED_COLS.get((space, dataset), ())
    header: list[str] | None = None
    out: dict[str, tuple[float, float]] = {}
    for line in readme.read_text().splitlines():
        if not line.strip().startswith("|"):
            header = None if not out else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        name = _PUBLISHED_NAMES.get(cells[0].lower())
        want = next((w for w in wants if w in header), None)
        if name is None or want is None or header.index(want) >= len(cells):
            continue
        m = re.match(r"^\s*(-?\d*\.\d+)\s*/\s*(-?\d*\.\d+)\s*$", cells[header.index(want)])
        if m:
            out[name] = (float(m.group(1)), float(m.group(2)))
    return out


def sample_archs(archs: Sequence[Arch], n: int, seed: int) -> list[Arch]:
    """The first ``n`` of a seeded permutation (so smaller samples are prefixes of larger ones)."""
    if n < 1:
        raise UsageError(f"--sample must be positive, got {n}")
    perm = np.random.default_rng(seed).permutation(len(archs))
    return [archs[i] for i in perm[: min(n, len(archs))]]


# --------------------------------------------------------------------------- scoring one arch


def build(space: str, arch: str, num_classes: int) -> nn.Module:
    if space == "nb201":
        from zenfx.zoo.nb201 import nb201

        return nb201(arch, num_classes)
    from zenfx.zoo.natsbench import nats_sss

    return nats_sss(arch, num_classes)


def arch_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 7919 + 17) % (2**31 - 1)


def conv_linear_macs(net: nn.Module, input_size: Sequence[int]) -> int:
    """MACs of one image counted with forward hooks on Conv/Linear (what FlopCounterMode counts:
    convolutions and matmuls; pooling, BN and adds are free). Equal to
    ``zenfx.cost.flops.count_macs`` on the cell networks (tested) and ~20x cheaper, so the
    benchmark uses it for the ``flops`` proxy."""
    total = [0]

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Linear):
            total[0] += out.numel() // out.shape[-1] * m.in_features * m.out_features
        else:
            k = 1
            for d in m.kernel_size:
                k *= d
            total[0] += out.numel() * (m.in_channels // m.groups) * k

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    dev = next((p.device for p in net.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            net(torch.zeros((1, *input_size), device=dev))
    finally:
        for h in hs:
            h.remove()
    return total[0]


def _net_for(spec: ProxySpec, net: nn.Module) -> nn.Module:
    if spec.name in ("zen", "phi"):  # pre-GAP map: cut before the global pool
        from zenfx.zoo.nb201 import pre_gap

        return pre_gap(net)  # type: ignore[arg-type]
    return net


def score_arch(cfg: BenchConfig, a: Arch, batches: Callable[[int], Iterator[Any]] | None = None) -> dict[str, Any]:
    """Scores and seconds of every proxy on one architecture (errors recorded, never raised)."""
    nc = NUM_CLASSES[cfg.dataset]
    s = arch_seed(cfg.seed, a.index)
    torch.manual_seed(s)
    template = build(cfg.space, a.arch, nc)  # weights drawn on the CPU: the same cell on any device
    dev = torch.device(cfg.device)
    if dev.type != "cpu":
        template = template.to(dev)
    scores: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    shared: dict[Any, Any] = {}  # one AZ-NAS forward/backward serves its three proxies
    for name in cfg.proxies:
        spec = get_proxy(name)
        ctx = ProxyContext(input_size=cfg.input_size, batch_size=cfg.batch_size, seed=s,
                           num_classes=nc, batches=batches, device=dev, shared=shared)
        t = time.perf_counter()
        try:
            with torch.random.fork_rng():
                torch.manual_seed(s + zlib.crc32(name.encode()))
                net = template if not spec.mutates else copy.deepcopy(template)
                if name in ("flops", "az_complexity") and cfg.fast_flops:
                    v = float(conv_linear_macs(net, ctx.input_size))
                else:
                    v = float(spec.fn(_net_for(spec, net), ctx))
            # +-inf is a rank (a dead network's Zen-Score is log 0 = -inf: the lowest); NaN is a failure
            scores[name] = None if math.isnan(v) else v
            if math.isnan(v):
                errors[name] = "NaN"
        except Exception as exc:  # one proxy failing on one arch must not stop the run
            scores[name] = None
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
        seconds[name] = time.perf_counter() - t
    row: dict[str, Any] = {"index": a.index, "arch": a.arch, "accuracy": a.accuracy, "scores": scores,
                           "seconds": seconds}
    if errors:
        row["errors"] = errors
    return row


def worker_state(cfg: BenchConfig) -> tuple[BenchConfig, Any]:
    """Per-worker state (the executor's ``init``): the config and the batch provider, built once; the
    scoring device checked where the worker runs (a Ray worker's GPU need not be the driver's)."""
    from .devices import parse_device

    parse_device(cfg.device)
    return cfg, _provider(cfg)


def score_task(state: tuple[BenchConfig, Any], task: tuple[Arch, tuple[str, ...]]) -> dict[str, Any]:
    """The executor's ``fn``: a task is an architecture record and the proxies it still lacks."""
    cfg, batches = state
    arch, proxies = task
    return score_arch(dataclasses.replace(cfg, proxies=proxies), arch, batches)


def _provider(cfg: BenchConfig):
    if not cfg.data:
        return None
    from .data import npz_batches

    return npz_batches(cfg.data, batch_size=cfg.batch_size)


# --------------------------------------------------------------------------- results on disk


class ResultStore:
    """An output folder: ``scores.jsonl`` (a ``JsonlLog`` whose header is the run's key, one row per
    architecture as it finishes), ``config.json``, ``scores.csv`` and ``correlations.json``.

    Opening it decides what may happen to what it holds: a fresh run refuses a folder that already
    holds scores (``--resume`` continues or extends it; another ``--out`` starts elsewhere), a resume
    refuses another run's scores, and a report needs scores to report on.
    """

    def __init__(self, out: str | os.PathLike[str], cfg: BenchConfig, *, resume: bool, report_only: bool) -> None:
        self.dir = Path(out)
        self.jsonl = self.dir / "scores.jsonl"
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"--out {self.dir} is a file, not a folder", hint="give a folder for the results")
        if report_only:
            if not self.jsonl.is_file() or not JsonlLog(self.jsonl).rows():
                raise UsageError(f"nothing to report: {self.dir} holds no scores",
                                 hint="run without --report-only first, or point --out at a run's folder")
        elif not resume and self.jsonl.is_file():
            held = JsonlLog(self.jsonl).rows()
            if held:
                raise UsageError(f"{self.dir} already holds {len(held)} scored architectures of an earlier run",
                                 hint="pass --resume to continue or extend that run, or choose another --out")
            self.jsonl.unlink()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create --out {self.dir}: {exc.strerror or exc}") from None
        self.log = JsonlLog(self.jsonl, header=cfg.key(), what="scores file")
        if not report_only:
            atomic_write_json(self.dir / "config.json", {"key": cfg.key(), "config": asdict(cfg)})

    def rows_by_index(self) -> dict[int, dict[str, Any]]:
        """Rows merged per architecture (a resumed run with extra proxies appends a second row)."""
        done: dict[int, dict[str, Any]] = {}
        for r in self.log.rows():
            _merge(done, r)
        return done

    def append(self, row: dict[str, Any]) -> None:
        self.log.append(row)

    def write_summary(self, rows: list[dict[str, Any]], proxies: Sequence[str], result: BenchResult) -> None:
        _write_csv(self.dir / "scores.csv", rows, proxies)
        atomic_write_json(self.dir / "correlations.json", result.to_dict())

    def close(self) -> None:
        self.log.close()


def _merge(done: dict[int, dict[str, Any]], row: dict[str, Any]) -> None:
    prev = done.get(row["index"])
    if prev is None:
        done[row["index"]] = row
        return
    prev["scores"].update(row["scores"])
    prev["seconds"].update(row["seconds"])
    if row.get("errors"):
        prev.setdefault("errors", {}).update(row["errors"])


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a ``scores.jsonl`` (header line and a line cut by a kill left out)."""
    return JsonlLog(path).rows() if path.is_file() else []


def _write_csv(path: Path, rows: list[dict[str, Any]], proxies: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "arch", "accuracy", *proxies, *[f"{p}_seconds" for p in proxies]])
        for r in rows:
            w.writerow([r["index"], r["arch"], r["accuracy"], *[r["scores"].get(p) for p in proxies],
                        *[r["seconds"].get(p) for p in proxies]])


# --------------------------------------------------------------------------- correlations


def correlate(rows: Sequence[dict[str, Any]], proxies: Sequence[str], published: dict[str, tuple[float, float]],
              gaussian: bool, aggregates: Sequence[str] = ()) -> list[ProxyCorrelation]:
    from scipy import stats

    out = []
    for agg in aggregates:
        out.append(_correlate_aggregate(rows, agg, published, gaussian))
    for p in proxies:
        spec = get_proxy(p)
        have = [r for r in rows if p in r["scores"]]
        ok = [r for r in have if r["scores"][p] is not None]
        tau = rho = None
        if len(ok) >= 3:
            x = np.array([r["scores"][p] for r in ok], dtype=np.float64)
            y = np.array([r["accuracy"] for r in ok], dtype=np.float64)
            sign = 1.0 if spec.higher_is_better else -1.0
            t = stats.kendalltau(sign * x, y).statistic
            s_ = stats.spearmanr(sign * x, y).statistic
            tau = None if not np.isfinite(t) else float(t)
            rho = None if not np.isfinite(s_) else float(s_)
        secs = [r["seconds"][p] for r in have if p in r.get("seconds", {})]
        pub = published.get(p)
        out.append(ProxyCorrelation(p, len(ok), tau, rho, pub[0] if pub else None, pub[1] if pub else None,
                                    float(np.mean(secs)) if secs else None, bool(gaussian and spec.needs_data),
                                    len(have) - len(ok)))
    return out


def _correlate_aggregate(rows: Sequence[dict[str, Any]], agg: str, published: dict[str, tuple[float, float]],
                         gaussian: bool) -> ProxyCorrelation:
    """An aggregated objective's correlation over the architectures every member was scored on: the
    pool is that sample (a failed member value ranks lowest, as AZ-NAS's NaN -> -inf)."""
    from scipy import stats

    from .proxies.aggregate import aggregate_scores, members_of

    members = members_of(agg)
    have = [r for r in rows if all(m in r["scores"] for m in members)]
    failed = sum(1 for r in have if any(r["scores"][m] is None for m in members))
    tau = rho = None
    if len(have) >= 3:
        x = aggregate_scores(agg, [r["scores"] for r in have])
        y = np.array([r["accuracy"] for r in have], dtype=np.float64)
        t, s_ = stats.kendalltau(x, y).statistic, stats.spearmanr(x, y).statistic
        tau = None if not np.isfinite(t) else float(t)
        rho = None if not np.isfinite(s_) else float(s_)
    secs = [sum(r["seconds"].get(m, 0.0) for m in members) for r in have]
    pub = published.get(agg)
    return ProxyCorrelation(agg, len(have), tau, rho, pub[0] if pub else None, pub[1] if pub else None,
                            float(np.mean(secs)) if secs else None,
                            bool(gaussian and any(get_proxy(m).needs_data for m in members)), failed)


# --------------------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, truth: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None,
              resume: bool = False, jobs: int = 1,
              progress: Callable[[int, int], None] | None = None,
              report_only: bool = False, backend: str = "local", ray_address: str | None = None) -> BenchResult:
    """Score ``cfg.sample`` architectures and correlate. ``out``: folder for scores.jsonl/.csv and
    config.json; ``resume`` reuses finished architectures there; ``report_only`` scores nothing and
    reports on what the folder holds for this sample. ``jobs`` workers of ``backend`` (``local``
    processes, or ``ray`` actors at ``ray_address``) score in parallel; ``jobs=1`` on the local
    backend scores in this process."""
    t0 = time.perf_counter()
    _check_config(cfg, jobs, backend)
    archs = sample_archs(load_truth(cfg.space, cfg.dataset, truth), cfg.sample, cfg.seed)
    store = ResultStore(out, cfg, resume=resume, report_only=report_only) if out is not None else None
    try:
        done = store.rows_by_index() if store is not None else {}
        todo = [] if report_only else _missing(archs, done, cfg.proxies)
        notes = [f"resumed: {len(archs) - len(todo)} of {len(archs)} architectures already scored"] \
            if resume and done else []
        _score_all(cfg, todo, done, store, jobs=jobs, backend=backend, ray_address=ray_address, progress=progress)
        return _result(cfg, truth, archs, done, store, notes, time.perf_counter() - t0)
    finally:
        if store is not None:
            store.close()


def _check_config(cfg: BenchConfig, jobs: int, backend: str = "local") -> None:
    check_space(cfg.space, cfg.dataset)
    from .proxies.aggregate import is_aggregate, members_of

    names: list[str] = []
    aggs: list[str] = list(cfg.aggregates)
    for p in cfg.proxies:
        if is_aggregate(p):
            names.extend(members_of(p))
            aggs.append(p.strip().lower())
        else:
            names.append(get_proxy(p).name)
    names.extend(m for a in aggs for m in members_of(a))
    cfg.proxies = tuple(dict.fromkeys(names))
    cfg.aggregates = tuple(dict.fromkeys(aggs))
    if not cfg.proxies:
        raise UsageError("no proxy given")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if cfg.batch_size < 2:
        raise UsageError("--batch-size must be at least 2 (naswot and jacob_cov compare inputs)")
    from .devices import parse_device

    cfg.device = str(parse_device(cfg.device, here=backend != "ray"))
    if cfg.resolution is not None and cfg.resolution < 8:
        raise UsageError(f"--resolution must be at least 8 (two stride-2 stages), got {cfg.resolution}")
    cfg.resolution = cfg.input_size[1]


def _missing(archs: Sequence[Arch], done: dict[int, dict[str, Any]], proxies: Sequence[str]) -> list[Arch]:
    return [a for a in archs if not all(p in done.get(a.index, {}).get("scores", {}) for p in proxies)]


def _failed_row(arch: Arch, proxies: Sequence[str], outcome: Any) -> dict[str, Any]:
    """A whole task lost (a worker that died twice, a timeout): every proxy it carried failed."""
    return {"index": arch.index, "arch": arch.arch, "accuracy": arch.accuracy,
            "scores": {p: None for p in proxies}, "seconds": {p: outcome.seconds for p in proxies},
            "errors": {p: outcome.error or outcome.status for p in proxies}}


def _score_all(cfg: BenchConfig, todo: list[Arch], done: dict[int, dict[str, Any]], store: ResultStore | None,
               *, jobs: int, backend: str, ray_address: str | None,
               progress: Callable[[int, int], None] | None) -> None:
    """Score what ``todo`` lacks on the executor; rows are stored as they finish (completion order)."""
    from .executor import make_executor, placement_options

    if progress:
        progress(0, len(todo))
    if not todo:
        return
    tasks = [(a, tuple(p for p in cfg.proxies if p not in done.get(a.index, {}).get("scores", {}))) for a in todo]
    workers = 0 if (jobs == 1 and backend == "local") else jobs
    opts = placement_options(backend, cfg.device)
    with make_executor(backend, workers, ray_address=ray_address, init=worker_state, init_arg=cfg, **opts) as ex:
        for k, outcome in enumerate(ex.map(score_task, tasks), start=1):
            arch, proxies = tasks[outcome.index]
            if not outcome.ok and (outcome.error or "").startswith("worker init failed"):
                raise UsageError(f"the workers cannot score: {outcome.error}")
            row = outcome.value if outcome.ok else _failed_row(arch, proxies, outcome)
            if store is not None:
                store.append(row)
            _merge(done, row)
            if progress:
                progress(k, len(todo))


def _result(cfg: BenchConfig, truth: str | os.PathLike[str], archs: Sequence[Arch], done: dict[int, dict[str, Any]],
            store: ResultStore | None, notes: list[str], elapsed: float) -> BenchResult:
    rows = [done[a.index] for a in archs if a.index in done]
    published = published_figures(cfg.space, cfg.dataset, truth)
    gaussian = cfg.data is None
    corr = correlate(rows, cfg.proxies, published, gaussian, cfg.aggregates)
    per_arch = [sum(r["seconds"].get(p, 0.0) for p in cfg.proxies) for r in rows
                if all(p in r["seconds"] for p in cfg.proxies)]
    if gaussian and any(get_proxy(p).needs_data for p in cfg.proxies):
        notes.append("data-dependent proxies ran on Gaussian inputs with random labels; the published "
                     "figures used real mini-batches")
    if len(rows) < len(archs):
        notes.append(f"only {len(rows)} of the {len(archs)} sampled architectures are scored")
    if not published:
        notes.append(f"no published figures for {cfg.space} {cfg.dataset} (README.md next to the truth file)")
    res = BenchResult(cfg, len(archs), len(rows), corr, float(np.mean(per_arch)) if per_arch else None,
                      str(store.dir) if store is not None else None, elapsed, notes)
    if store is not None:
        store.write_summary(rows, cfg.proxies, res)
    return res


__all__ = ["Arch", "BenchConfig", "BenchResult", "DEFAULT_PROXIES", "ProxyCorrelation", "ResultStore", "SPACES",
           "build", "correlate", "load_truth", "published_figures", "run_bench", "sample_archs", "score_arch",
           "score_task", "truth_column", "worker_state"]
