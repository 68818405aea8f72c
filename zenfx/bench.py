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
import json
import math
import os
import re
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .errors import UsageError
from .proxies.base import ProxyContext, ProxySpec, get_proxy

SPACES = ("nb201", "nats-sss")
TRUTH_FILES = {"nb201": "nasbench201.csv", "nats-sss": "natsbench_sss.csv"}
DATASETS = {"nb201": ("cifar10", "cifar100"), "nats-sss": ("cifar100",)}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DEFAULT_PROXIES = ("params", "flops", "synflow", "zen", "naswot", "grad_norm", "snip", "fisher", "jacob_cov",
                   "grasp", "zico")
# README row labels -> registry names
_PUBLISHED_NAMES = {"#params": "params", "params": "params", "flops": "flops", "grad_norm": "grad_norm",
                    "snip": "snip", "grasp": "grasp", "fisher": "fisher", "synflow": "synflow",
                    "naswot": "naswot", "zen-score": "zen", "zen": "zen", "zico": "zico",
                    "jacob_cov": "jacob_cov"}
_PUBLISHED_COLS = {("nb201", "cifar10"): "nb201 c10", ("nb201", "cifar100"): "nb201 c100",
                   ("nats-sss", "cifar100"): "sss c100"}


@dataclass
class BenchConfig:
    space: str
    dataset: str
    sample: int
    seed: int = 0
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    batch_size: int = 64
    resolution: int = 32
    data: Optional[str] = None  # .npz batch file; None: Gaussian inputs + random labels
    fast_flops: bool = True  # flops by Conv/Linear hooks (== count_macs here) instead of FlopCounterMode

    def key(self) -> dict[str, Any]:
        """What must match for results in an output folder to be reused."""
        return {"space": self.space, "dataset": self.dataset, "seed": self.seed, "batch_size": self.batch_size,
                "resolution": self.resolution, "data": self.data}


@dataclass
class Arch:
    index: int
    arch: str
    accuracy: float


@dataclass
class ProxyCorrelation:
    proxy: str
    n: int
    kendall_tau: Optional[float]
    spearman_rho: Optional[float]
    published_tau: Optional[float]
    published_rho: Optional[float]
    mean_seconds: Optional[float]
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
    mean_seconds_per_arch: Optional[float]
    out: Optional[str]
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


def load_truth(space: str, dataset: str, truth: str | os.PathLike[str]) -> list[Arch]:
    check_space(space, dataset)
    path = truth_file(space, truth)
    col = f"{dataset}_test"
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
    want = _PUBLISHED_COLS.get((space, dataset))
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
        if name is None or want not in header:
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
    try:
        with torch.no_grad():
            net(torch.zeros((1, *input_size)))
    finally:
        for h in hs:
            h.remove()
    return total[0]


def _net_for(spec: ProxySpec, net: nn.Module) -> nn.Module:
    if spec.name in ("zen", "phi"):  # pre-GAP map: cut before the global pool
        from zenfx.zoo.nb201 import pre_gap

        return pre_gap(net)  # type: ignore[arg-type]
    return net


def score_arch(cfg: BenchConfig, a: Arch, batches: Optional[Callable[[int], Iterator[Any]]] = None) -> dict[str, Any]:
    """Scores and seconds of every proxy on one architecture (errors recorded, never raised)."""
    nc = NUM_CLASSES[cfg.dataset]
    s = arch_seed(cfg.seed, a.index)
    torch.manual_seed(s)
    template = build(cfg.space, a.arch, nc)
    scores: dict[str, Optional[float]] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in cfg.proxies:
        spec = get_proxy(name)
        ctx = ProxyContext(input_size=(3, cfg.resolution, cfg.resolution), batch_size=cfg.batch_size, seed=s,
                           num_classes=nc, batches=batches)
        t = time.perf_counter()
        try:
            with torch.random.fork_rng():
                torch.manual_seed(s + zlib.crc32(name.encode()))
                net = template if not spec.mutates else copy.deepcopy(template)
                if name == "flops" and cfg.fast_flops:
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


_WORKER: dict[str, Any] = {}


def _worker_init(cfg: BenchConfig) -> None:
    torch.set_num_threads(1)
    _WORKER["cfg"] = cfg
    _WORKER["batches"] = _provider(cfg)


def _worker_run(a: Arch) -> dict[str, Any]:
    return score_arch(_WORKER["cfg"], a, _WORKER["batches"])


def _provider(cfg: BenchConfig):
    if not cfg.data:
        return None
    from .data import npz_batches

    return npz_batches(cfg.data, batch_size=cfg.batch_size)


# --------------------------------------------------------------------------- results on disk


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if not path.is_file():
        return rows
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interrupted run
                continue
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]], proxies: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "arch", "accuracy", *proxies, *[f"{p}_seconds" for p in proxies]])
        for r in rows:
            w.writerow([r["index"], r["arch"], r["accuracy"], *[r["scores"].get(p) for p in proxies],
                        *[r["seconds"].get(p) for p in proxies]])


# --------------------------------------------------------------------------- correlations


def correlate(rows: Sequence[dict[str, Any]], proxies: Sequence[str], published: dict[str, tuple[float, float]],
              gaussian: bool) -> list[ProxyCorrelation]:
    from scipy import stats

    out = []
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


# --------------------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, truth: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None,
              resume: bool = False, jobs: int = 1,
              progress: Optional[Callable[[int, int], None]] = None,
              report_only: bool = False) -> BenchResult:
    """Score ``cfg.sample`` architectures and correlate. ``out``: folder for scores.jsonl/.csv and
    config.json; ``resume`` reuses finished architectures there; ``report_only`` scores nothing and
    reports on what the folder holds for this sample."""
    t0 = time.perf_counter()
    check_space(cfg.space, cfg.dataset)
    cfg.proxies = tuple(dict.fromkeys(get_proxy(p).name for p in cfg.proxies))
    if not cfg.proxies:
        raise UsageError("no proxy given")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if cfg.batch_size < 2:
        raise UsageError("--batch-size must be at least 2 (naswot and jacob_cov compare inputs)")
    archs = sample_archs(load_truth(cfg.space, cfg.dataset, truth), cfg.sample, cfg.seed)
    published = published_figures(cfg.space, cfg.dataset, truth)
    gaussian = cfg.data is None
    notes: list[str] = []
    done: dict[int, dict[str, Any]] = {}
    outdir = Path(out) if out else None
    jsonl = None
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        jsonl = outdir / "scores.jsonl"
        conf_path = outdir / "config.json"
        if (resume or report_only) and conf_path.is_file():
            old = json.loads(conf_path.read_text())
            if old.get("key") != cfg.key():
                raise UsageError(f"{outdir} holds results of a different run ({old.get('key')})",
                                 hint="use another --out or the same space/dataset/seed/batch size/data")
        elif jsonl.is_file() and not resume and not report_only:
            jsonl.unlink()
        conf_path.write_text(json.dumps({"key": cfg.key(), "config": asdict(cfg)}, indent=2))
        if resume or report_only:
            for r in read_rows(jsonl):
                prev = done.get(r["index"])
                if prev is None:
                    done[r["index"]] = r
                else:  # merge a later run's extra proxies into the same arch
                    prev["scores"].update(r["scores"])
                    prev["seconds"].update(r["seconds"])
    todo = [] if report_only else [a for a in archs if not all(p in done.get(a.index, {}).get("scores", {})
                                                                for p in cfg.proxies)]
    if resume and done:
        notes.append(f"resumed: {len(archs) - len(todo)} of {len(archs)} architectures already scored")

    def finish(row: dict[str, Any]) -> None:
        prev = done.get(row["index"])
        if prev is not None:
            prev["scores"].update(row["scores"])
            prev["seconds"].update(row["seconds"])
            if row.get("errors"):
                prev.setdefault("errors", {}).update(row["errors"])
        else:
            done[row["index"]] = row
        if jsonl is not None:
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(row) + "\n")
                fh.flush()

    total = len(todo)
    if progress:
        progress(0, total)
    if todo:
        subcfg = copy.deepcopy(cfg)
        partial = {a.index: [p for p in cfg.proxies if p not in done.get(a.index, {}).get("scores", {})] for a in todo}
        if jobs == 1:
            batches = _provider(cfg)
            for i, a in enumerate(todo):
                subcfg.proxies = tuple(partial[a.index])
                finish(score_arch(subcfg, a, batches))
                if progress:
                    progress(i + 1, total)
        else:
            groups: dict[tuple[str, ...], list[Arch]] = {}
            for a in todo:
                groups.setdefault(tuple(partial[a.index]), []).append(a)
            k = 0
            for plist, group in groups.items():
                subcfg.proxies = plist
                with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init, initargs=(subcfg,)) as ex:
                    for row in ex.map(_worker_run, group, chunksize=1):
                        finish(row)
                        k += 1
                        if progress:
                            progress(k, total)
    rows = [done[a.index] for a in archs if a.index in done]
    if outdir is not None:
        _write_csv(outdir / "scores.csv", rows, cfg.proxies)
    corr = correlate(rows, cfg.proxies, published, gaussian)
    per_arch = [sum(r["seconds"].get(p, 0.0) for p in cfg.proxies) for r in rows
                if all(p in r["seconds"] for p in cfg.proxies)]
    if gaussian and any(get_proxy(p).needs_data for p in cfg.proxies):
        notes.append("data-dependent proxies ran on Gaussian inputs with random labels; the published "
                     "figures used CIFAR mini-batches")
    if len(rows) < len(archs):
        notes.append(f"only {len(rows)} of the {len(archs)} sampled architectures are scored")
    if not published:
        notes.append("no published figures found (README.md next to the truth file)")
    res = BenchResult(cfg, len(archs), len(rows), corr, float(np.mean(per_arch)) if per_arch else None,
                      str(outdir) if outdir else None, time.perf_counter() - t0, notes)
    if outdir is not None:
        (outdir / "correlations.json").write_text(json.dumps(res.to_dict(), indent=2))
    return res


__all__ = ["Arch", "BenchConfig", "BenchResult", "DEFAULT_PROXIES", "ProxyCorrelation", "SPACES", "build",
           "correlate", "load_truth", "published_figures", "run_bench", "sample_archs", "score_arch"]
