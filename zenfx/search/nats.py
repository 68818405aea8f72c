"""``zenfx bench search``: does the search find good networks? Ground truth on NATS-Bench-SSS.

NATS-Bench's size space is the NB201 macro network with five channel numbers C0..C4, each in
{8, 16, ..., 64} (``zoo/natsbench.py``). zenfx's graph analysis finds *eleven* free channel groups
in that network, not five: inside each cell, node 1 and node 2 are channel groups of their own
(NATS ties them to the cell's width by construction, the graph does not), so graph-level width
edits leave the benchmark's space and no ground truth exists for what they build. The benchmark
therefore runs the search unchanged -- rounds, population, budgets, dedup, workers, scoring on the
VCNN graph -- with one custom mutation operator (``NatsWidths``): an edit moves one of the five
NATS widths to another grid value (through the constructor's ``channels`` string).

For each of R seeded runs:

* **evolution**: ``zenfx.search`` from ``zoo:nats_sss`` starting at ``--start`` (default: the
  largest uniform architecture C:C:C:C:C within the budget), one edit from the seed and two from a
  member, under ``--budget-params``, for N candidates; the architecture it returns (best proxy
  score) is looked up in the truth table;
* **random search**: N architectures drawn uniformly from the whole space with the run's seed
  (those over budget are rejected, as in the search), the in-budget ones scored with the same proxy,
  same scoring seed; the best-scoring one is looked up.

Reported per proxy: the true CIFAR-100 test accuracy of what each method returns (mean over runs),
its percentile among the architectures within the budget, and the best accuracy within the budget.
Parameters of all 32,768 architectures come from per-block counts of meta-device modules (exact,
seconds), never from building every network.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import UsageError

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)
SPACE = "nats-sss"
NUM_CLASSES = 100


def truth_table(truth: str | Path) -> dict[str, float]:
    p = Path(truth)
    if p.is_dir():
        p = p / "natsbench_sss.csv"
    if not p.exists():
        raise UsageError(f"NATS-Bench-SSS truth file {p} not found", hint="--truth FOLDER holding natsbench_sss.csv")
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return {r["channels"]: float(r["cifar100_test"]) for r in rows}
    except KeyError:
        raise UsageError(f"{p} has no channels/cifar100_test columns") from None


def _count(kind: str, cin: int, cout: int, torch: Any) -> int:
    from zenfx.zoo.natsbench import SSS_CELL
    from zenfx.zoo.nb201 import Cell, ResBlock, parse_arch

    with torch.device("meta"):
        if kind == "cell":
            m = Cell(parse_arch(SSS_CELL), cin, cout)
        elif kind == "res":
            m = ResBlock(cin, cout, 2)
        elif kind == "stem":
            m = torch.nn.Sequential(torch.nn.Conv2d(3, cout, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(cout))
        else:  # head: final BN + classifier
            m = torch.nn.Sequential(torch.nn.BatchNorm2d(cin), torch.nn.Linear(cin, NUM_CLASSES))
    return sum(p.numel() for p in m.parameters())


@cache
def _params_of(kind: str, cin: int, cout: int) -> int:
    import torch

    return _count(kind, cin, cout, torch)


def arch_params(channels: str) -> int:
    c0, c1, c2, c3, c4 = (int(x) for x in channels.split(":"))
    return (_params_of("stem", 3, c0) + _params_of("cell", c0, c0) + _params_of("res", c0, c1)
            + _params_of("cell", c1, c2) + _params_of("res", c2, c3) + _params_of("cell", c3, c4)
            + _params_of("head", c4, 0))


def all_archs() -> list[str]:
    return [":".join(str(w) for w in ws) for ws in itertools.product(WIDTHS, repeat=5)]


def channels_of(model: Any) -> str:
    """C0:C1:C2:C3:C4 read back from a built NATS network (after any width edits)."""
    from torch import nn

    widths = [model.stem[0].out_channels]
    for i in range(1, 5):
        convs = [m for m in model.cells[i].modules() if isinstance(m, nn.Conv2d)]
        widths.append(convs[-1].out_channels)
    return ":".join(str(w) for w in widths)


@dataclass
class MethodResult:
    accuracies: list[float] = field(default_factory=list)
    percentiles: list[float] = field(default_factory=list)
    archs: list[str] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"archs": self.archs, "accuracies": self.accuracies, "percentiles": self.percentiles,
                "scored": self.scored, "mean_accuracy": _mean(self.accuracies),
                "std_accuracy": _std(self.accuracies), "mean_percentile": _mean(self.percentiles)}


@dataclass
class ProxyBench:
    proxy: str
    evolution: MethodResult
    random: MethodResult
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"proxy": self.proxy, "evolution": self.evolution.to_dict(), "random": self.random.to_dict(),
                "seconds": self.seconds}


@dataclass
class SearchBenchResult:
    space: str
    budget_params: int | None  # None: no budget (the whole space)
    candidates: int
    runs: int
    population: int
    start: str
    in_budget: int
    best_in_budget: float
    best_arch: str
    median_accuracy_in_budget: float
    proxies: list[ProxyBench]
    notes: list[str] = field(default_factory=list)
    dataset: str | None = None  # the truth's column; None: NATS-SSS (CIFAR-100 only)

    def to_dict(self) -> dict[str, Any]:
        head = {} if self.dataset is None else {"dataset": self.dataset}
        return {**head, "space": self.space, "budget_params": self.budget_params, "candidates": self.candidates,
                "runs": self.runs, "population": self.population, "start": self.start,
                "in_budget": self.in_budget, "best_in_budget": self.best_in_budget, "best_arch": self.best_arch,
                "median_accuracy_in_budget": self.median_accuracy_in_budget,
                "proxies": [p.to_dict() for p in self.proxies], "notes": list(self.notes)}


def _mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def _std(xs: Sequence[float]) -> float | None:
    return statistics.pstdev(xs) if len(xs) > 1 else None


def median_params() -> int:
    return int(statistics.median(arch_params(a) for a in all_archs()))


def run_bench_search(truth: str | Path, *, proxies: Sequence[str] = ("zen", "zico", "params"),
                     budget_params: Any = None, candidates: int = 100, runs: int = 3, population: int = 32,
                     round_size: int = 8, batch_size: int = 64, start: str | None = None, seed: int = 0,
                     workers: int | None = None, out: str | Path = "bench_search_runs",
                     progress: Callable[[str], None] | None = None) -> SearchBenchResult:
    """R seeded evolution runs and R random searches per proxy, checked against NATS-Bench-SSS."""
    from .budget import parse_count

    say = progress or (lambda _m: None)
    table = truth_table(truth)
    archs = all_archs()
    params = {a: arch_params(a) for a in archs}
    budget = int(statistics.median(params.values())) if budget_params is None else parse_count(budget_params)
    within = [a for a in archs if params[a] <= budget and a in table]
    if not within:
        raise UsageError(f"no NATS-SSS architecture has at most {budget} parameters")
    accs = sorted(table[a] for a in within)
    best_arch = max(within, key=lambda a: table[a])
    start = default_start(params, budget) if start in (None, "", "auto") else start
    if start not in params:
        raise UsageError(f"--start {start!r} is not a NATS-SSS channel string (C0:C1:C2:C3:C4, each 8..64 step 8)")
    if params[start] > budget:
        raise UsageError(f"--start {start} has {params[start]:,} parameters, over the budget {budget:,}")
    results = []
    out = Path(out)
    from .run import check_run_dir

    check_run_dir(out)
    import time

    for proxy in proxies:
        t0 = time.perf_counter()
        evo, rnd = MethodResult(), MethodResult()
        for r in range(runs):
            say(f"{proxy}: evolution run {r + 1}/{runs}")
            arch, n = _evolve(proxy, start, budget, candidates, population, round_size, batch_size, seed + r,
                              workers, out / f"{proxy}_run{r}")
            _record(evo, arch, n, table, accs)
            say(f"{proxy}: random search {r + 1}/{runs}")
            arch, n = _random_search(proxy, archs, params, budget, candidates, batch_size, seed + r, workers)
            _record(rnd, arch, n, table, accs)
        results.append(ProxyBench(proxy, evo, rnd, time.perf_counter() - t0))
    notes = [f"budget: {budget:,} parameters ({'the space median' if budget_params is None else 'given'}); "
             f"{len(within):,} of {len(archs):,} architectures within it",
             "accuracy: NATS-Bench-SSS CIFAR-100 test accuracy (90 epochs); percentile: share of in-budget "
             "architectures at or below it"]
    if "zico" in proxies:
        notes.append("zico on Gaussian inputs with random labels (no CIFAR batches given)")
    return SearchBenchResult(SPACE, budget, candidates, runs, population, start, len(within), table[best_arch],
                             best_arch, statistics.median(accs), results, notes)


def _record(m: MethodResult, arch: str | None, n: int, table: dict[str, float], accs: list[float]) -> None:
    m.scored.append(n)
    if arch is None:
        return
    acc = table[arch]
    m.archs.append(arch)
    m.accuracies.append(acc)
    import bisect

    m.percentiles.append(100.0 * bisect.bisect_right(accs, acc) / len(accs))


def _nats_genome(channels: str) -> Any:
    from ..genome import Genome

    return Genome(seed="zoo:nats_sss", kwargs={"channels": channels, "num_classes": NUM_CLASSES},
                  input_size=(3, 32, 32))


class NatsWidths:
    """The mutation operator of the NATS-SSS benchmark: an edit moves one of the five widths of the
    ``channels`` string to another value of the grid; the structure key is the string itself."""

    name = "nats-sss-widths"

    def mutate(self, parent: Any, rng: random.Random, n: int) -> Any:
        cs = [int(x) for x in parent.kwargs["channels"].split(":")]
        for _ in range(n):
            i = rng.randrange(len(cs))
            cs[i] = rng.choice([w for w in WIDTHS if w != cs[i]])
        return _nats_genome(":".join(str(c) for c in cs))

    def key(self, genome: Any) -> str:
        return "nats:" + str(genome.kwargs["channels"])


def default_start(params: dict[str, int], budget: int) -> str:
    """The largest uniform architecture C:C:C:C:C within the budget."""
    fits = [w for w in WIDTHS if params[":".join([str(w)] * 5)] <= budget]
    if not fits:
        raise UsageError(f"no uniform NATS-SSS architecture has at most {budget} parameters")
    return ":".join([str(max(fits))] * 5)


def _evolve(proxy: str, start: str, budget: int, candidates: int, population: int, round_size: int,
            batch_size: int, seed: int, workers: int | None, out: Path) -> tuple[str | None, int]:
    import shutil

    from ..genome import build
    from .run import search

    if out.exists():
        shutil.rmtree(out)
    g = _nats_genome(start)
    res = search(g, out=out, proxy=proxy, budget_params=budget, candidates=candidates, population=population,
                 round_size=round_size, batch_size=batch_size, seed=seed, kinds=("width",), mutator=NatsWidths(),
                 workers=workers, plots=False, export=False, num_classes=NUM_CLASSES)
    if res.best is None:
        return None, res.counters["scored"]
    from ..genome import Genome

    model = build(Genome.from_dict(res.best["genome"]), device="meta")
    arch = channels_of(model)
    assert arch == res.best["genome"]["kwargs"]["channels"], (arch, res.best["genome"]["kwargs"])
    return arch, res.counters["scored"]


def _random_search(proxy: str, archs: list[str], params: dict[str, int], budget: int, candidates: int,
                   batch_size: int, seed: int, workers: int | None) -> tuple[str | None, int]:
    rng = random.Random(seed)
    drawn = [archs[rng.randrange(len(archs))] for _ in range(candidates)]
    fit = sorted({a for a in drawn if params[a] <= budget}, key=drawn.index)
    return score_pool(proxy, fit, _nats_genome, batch_size=batch_size, seed=seed, workers=workers,
                      num_classes=NUM_CLASSES)


def score_pool(proxy: str, pool: list[str], genome_of: Callable[[str], Any], *, batch_size: int, seed: int,
               workers: int | None, num_classes: int) -> tuple[str | None, int]:
    """Score the architectures of ``pool`` (distinct, in draw order) with ``proxy`` as the search's
    workers do; the best-scoring one (first in ``pool`` on a tie) and how many were scored. A
    rank-aggregated objective is ranked within the scored ones; failures are left out."""
    from ..executor import make_executor
    from .budget import Budgets
    from .candidate import EvalSettings, evaluate_task, init_worker

    settings = EvalSettings(proxy=proxy, batch_size=batch_size, seed=seed, num_classes=num_classes,
                            budgets=Budgets().to_dict(), seed_genome=None, threads=1)
    scores: dict[str, float] = {}
    values: dict[str, dict[str, Any]] = {}
    from .run import NO_GRAD_PROXIES

    opts = {} if proxy in NO_GRAD_PROXIES or os.environ.get("ZENFX_START_METHOD") else {"start_method": "forkserver"}
    with make_executor("local", workers, init=init_worker, init_arg=settings.to_dict(), **opts) as ex:
        for o in ex.map(evaluate_task, [{"genome": genome_of(a).to_dict()} for a in pool]):
            if o.ok and o.value.get("status") == "scored":
                scores[pool[o.index]] = float(o.value["score"])
                if o.value.get("values") is not None:
                    values[pool[o.index]] = o.value["values"]
    if not scores:
        return None, 0
    if values:  # a rank-aggregated objective: ranked within the architectures drawn and scored
        from ..proxies.aggregate import aggregate_scores

        ranked = [a for a in pool if a in values]
        scores = dict(zip(ranked, (float(v) for v in aggregate_scores(proxy, [values[a] for a in ranked])),
                          strict=True))
    return max(pool, key=lambda a: scores.get(a, -math.inf)), len(scores)


__all__ = ["MethodResult", "ProxyBench", "SearchBenchResult", "all_archs", "arch_params", "channels_of",
           "median_params", "run_bench_search", "score_pool", "truth_table"]
