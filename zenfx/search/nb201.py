"""``zenfx bench search --space nb201``: does the search find good cells? Ground truth on NAS-Bench-201.

NAS-Bench-201's topology space is one cell -- six edges, each one of five operations -- shared by
all 15 cells of a fixed macro network (``zoo/nb201.py``); 5^6 = 15,625 cells. A graph-level edit
would change one of the 15 cells alone and leave the benchmark, so the benchmark runs the search
unchanged with one custom mutation operator (``Nb201Ops``): an edit changes one edge's operation of
the shared cell (through the constructor's ``arch`` string). Identical cells (same arch string) are
one structure: the string is the dedup key.

For each of R seeded runs, per proxy (as ``zenfx.search.nats`` does for NATS-SSS, whose result
types and table this reuses):

* **evolution**: ``zenfx.search`` from ``zoo:nb201`` starting at ``--start`` (default: a cell drawn
  with the run's seed among the 4,096 without a ``none`` edge), for N candidates; the cell it returns
  (best proxy score) is looked up in the truth table;
* **random search**: N cells drawn uniformly from the truth table with the run's seed, scored with
  the same proxy and scoring seed; the best-scoring one is looked up.

No parameter budget: the percentile is the share of the whole space (every cell with a truth
value) at or below the returned cell's test accuracy on ``--dataset`` (CIFAR-10 or CIFAR-100).
Cells without a truth value are outside the space: the mutator redraws an edit that lands on one,
random search never draws one. A cell whose proxy fails is not a candidate (the search counts it
failed; random search leaves it out).
"""

from __future__ import annotations

import csv
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .nats import MethodResult, ProxyBench, SearchBenchResult, score_pool

SPACE = "nb201"
TRUTH_FILE = "nasbench201.csv"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # zoo/nb201.py's
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, source) in arch-string order
START_TRIES = 20
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def arch_of(ops: Sequence[str]) -> str:
    """Six edge ops in ``EDGES`` order -> ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|``."""
    if len(ops) != len(EDGES) or any(o not in OPS for o in ops):
        raise UsageError(f"an NB201 cell has {len(EDGES)} edges, each one of {', '.join(OPS)}: got {list(ops)}")
    groups = [[f"{ops[k]}~{src}" for k, (node, src) in enumerate(EDGES) if node == j] for j in (1, 2, 3)]
    return "+".join("|" + "|".join(g) + "|" for g in groups)


def ops_of(arch: str) -> list[str]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> [a, b, c, d, e, f]; refuses anything else."""
    groups = [[s for s in g.strip().strip("|").split("|") if s] for g in arch.strip().split("+")]
    items = [item for g in groups for item in g]
    want = [f"~{src}" for _, src in EDGES]
    if len(groups) != 3 or [len(g) for g in groups] != [1, 2, 3] or any(
            not i.endswith(w) for i, w in zip(items, want, strict=True)):
        raise UsageError(f"{arch!r} is not an NB201 arch string (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
    ops = [i.rpartition("~")[0] for i in items]
    if any(o not in OPS for o in ops):
        raise UsageError(f"unknown NB201 op in {arch!r} (known: {', '.join(OPS)})")
    return ops


def all_cells() -> list[str]:
    return [arch_of(ops) for ops in itertools.product(OPS, repeat=len(EDGES))]


def truth_table(truth: str | Path, dataset: str = "cifar100") -> dict[str, float]:
    """arch string -> test accuracy on ``dataset`` (column ``<dataset>_test``, or ``<dataset>``);
    rows with an empty or non-numeric value are left out."""
    if dataset not in NUM_CLASSES:
        raise UsageError(f"--dataset {dataset!r} is not available for bench search on nb201 "
                         f"(choose {', '.join(NUM_CLASSES)})")
    p = Path(truth)
    if p.is_dir():
        p = p / TRUTH_FILE
    if not p.is_file():
        raise UsageError(f"NAS-Bench-201 truth file {p} not found", hint=f"--truth FOLDER holding {TRUTH_FILE}")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        col = next((c for c in (f"{dataset}_test", dataset) if c in names), None)
        if "arch_str" not in names or col is None:
            raise UsageError(f"{p} lacks the columns arch_str and {dataset}_test (has {names})")
        return {r["arch_str"].strip(): v for r in reader if (v := _number(r[col])) is not None}


def _number(text: str | None) -> float | None:
    try:
        v = float(text or "")
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def cell_genome(arch: str, num_classes: int, resolution: int = 32) -> Any:
    from ..genome import Genome

    return Genome(seed="zoo:nb201", kwargs={"arch": arch, "num_classes": num_classes},
                  input_size=(3, resolution, resolution))


class Nb201Ops:
    """The mutation operator of the NB201 benchmark: an edit changes one edge's operation of the
    shared cell to another of the five; the structure key is the arch string. With ``allowed``, a
    child outside it (no ground truth) is redrawn, up to ``tries`` times."""

    name = "nb201-ops"

    def __init__(self, num_classes: int, resolution: int = 32, allowed: frozenset[str] | None = None,
                 tries: int = 100) -> None:
        self.num_classes, self.resolution, self.allowed, self.tries = num_classes, resolution, allowed, tries

    def edit(self, ops: Sequence[str], rng: random.Random, n: int) -> list[str]:
        out = list(ops)
        for _ in range(n):
            i = rng.randrange(len(out))
            out[i] = rng.choice([o for o in OPS if o != out[i]])
        return out

    def mutate(self, parent: Any, rng: random.Random, n: int) -> Any:
        ops = ops_of(parent.kwargs["arch"])
        arch = arch_of(self.edit(ops, rng, n))
        for _ in range(self.tries):
            if self.allowed is None or arch in self.allowed:
                break
            arch = arch_of(self.edit(ops, rng, n))
        return cell_genome(arch, self.num_classes, self.resolution)

    def key(self, genome: Any) -> str:
        return "nb201:" + str(genome.kwargs["arch"])


@dataclass
class _Setup:
    table: dict[str, float]
    cells: list[str]  # the space: cells with a truth value, in the truth file's order
    accs: list[float]  # sorted
    num_classes: int
    resolution: int
    start: str | None  # None: drawn per run


def default_start(cells: Sequence[str], seed: int) -> str:
    """A cell drawn with ``seed`` among those of ``cells`` without a ``none`` edge (any cell if none is)."""
    return start_order(cells, seed)[0]


def start_order(cells: Sequence[str], seed: int, n: int = START_TRIES) -> list[str]:
    """The auto starts of a run, in the order tried: ``n`` cells without a ``none`` edge drawn with
    ``seed`` (a start the search cannot evaluate, e.g. not VCNN-convertible, gives way to the next)."""
    pool = [c for c in cells if "none~" not in c] or list(cells)
    return random.Random(seed).sample(pool, min(n, len(pool)))


def _setup(truth: str | Path, dataset: str, start: str | None, resolution: int) -> _Setup:
    table = truth_table(truth, dataset)
    if not table:
        raise UsageError(f"the NAS-Bench-201 truth file under {truth} has no {dataset} accuracies")
    if resolution < 8:
        raise UsageError(f"--resolution must be at least 8 (two stride-2 blocks), got {resolution}")
    start = None if start in (None, "", "auto") else arch_of(ops_of(start))
    if start is not None and start not in table:
        raise UsageError(f"--start {start} has no {dataset} accuracy in the truth file")
    return _Setup(table, list(table), sorted(table.values()), NUM_CLASSES[dataset], resolution, start)


def run_bench_search(truth: str | Path, *, dataset: str = "cifar100",
                     proxies: Sequence[str] = ("zen", "zico", "az", "params"), candidates: int = 100, runs: int = 3,
                     population: int = 32, round_size: int = 8, batch_size: int = 64, resolution: int = 32,
                     start: str | None = None, seed: int = 0, workers: int | None = None,
                     out: str | Path = "bench_search_runs",
                     progress: Callable[[str], None] | None = None) -> SearchBenchResult:
    """R seeded evolution runs and R random searches per proxy, checked against NAS-Bench-201."""
    from .run import check_run_dir

    say = progress or (lambda _m: None)
    s = _setup(truth, dataset, start, resolution)
    out = Path(out)
    check_run_dir(out)
    results = []
    for proxy in proxies:
        t0 = time.perf_counter()
        evo, rnd = MethodResult(), MethodResult()
        for r in range(runs):
            say(f"{proxy}: evolution run {r + 1}/{runs}")
            _record(evo, *_evolve(s, proxy, seed + r, out / f"{proxy}_run{r}", candidates=candidates,
                                  population=population, round_size=round_size, batch_size=batch_size,
                                  workers=workers), s)
            say(f"{proxy}: random search {r + 1}/{runs}")
            _record(rnd, *_random_search(s, proxy, candidates, batch_size, seed + r, workers), s)
        results.append(ProxyBench(proxy, evo, rnd, time.perf_counter() - t0))
    best = max(s.cells, key=lambda a: s.table[a])
    return SearchBenchResult(SPACE, None, candidates, runs, population, s.start or "auto (drawn per run)",
                             len(s.cells), s.table[best], best, statistics.median(s.accs), results,
                             _notes(s, dataset, proxies), dataset=dataset)


def _notes(s: _Setup, dataset: str, proxies: Sequence[str]) -> list[str]:
    notes = [f"space: {len(s.cells):,} NAS-Bench-201 cells with a {dataset} accuracy; no parameter budget",
             f"accuracy: NAS-Bench-201 {DATASET_NAMES[dataset]} test accuracy (200 epochs); percentile: share of "
             "the space at or below it",
             f"inputs: Gaussian, {s.resolution}x{s.resolution}"]
    if s.start is None:
        notes.append("start: a cell without 'none' edges drawn with each run's seed (the next draw when the "
                     "search cannot evaluate it)")
    if "zico" in proxies:
        notes.append("zico on Gaussian inputs with random labels (no CIFAR batches given)")
    return notes


def _record(m: MethodResult, arch: str | None, n: int, s: _Setup) -> None:
    import bisect

    m.scored.append(n)
    if arch is None or arch not in s.table:
        return
    acc = s.table[arch]
    m.archs.append(arch)
    m.accuracies.append(acc)
    m.percentiles.append(100.0 * bisect.bisect_right(s.accs, acc) / len(s.accs))


def _evolve(s: _Setup, proxy: str, seed: int, out: Path, **kw: Any) -> tuple[str | None, int]:
    """One evolution run from ``--start``, or from the first auto start the search can evaluate."""
    from ..errors import NotConvertibleError, NotTraceableError

    starts = [s.start] if s.start is not None else start_order(s.cells, seed)
    for i, start in enumerate(starts):
        try:
            return _search_from(s, proxy, start, seed, out, **kw)
        except (NotConvertibleError, NotTraceableError):
            if s.start is not None or i == len(starts) - 1:
                raise
    raise AssertionError("unreachable")


def _search_from(s: _Setup, proxy: str, start: str, seed: int, out: Path, **kw: Any) -> tuple[str | None, int]:
    import shutil

    from .run import search

    if out.exists():
        shutil.rmtree(out)
    mutator = Nb201Ops(s.num_classes, s.resolution, frozenset(s.table))
    res = search(cell_genome(start, s.num_classes, s.resolution), out=out, proxy=proxy, seed=seed, kinds=("width",),
                 mutator=mutator, plots=False, export=False, num_classes=s.num_classes, **kw)
    if res.best is None:
        return None, res.counters["scored"]
    return str(res.best["genome"]["kwargs"]["arch"]), res.counters["scored"]


def _random_search(s: _Setup, proxy: str, candidates: int, batch_size: int, seed: int,
                   workers: int | None) -> tuple[str | None, int]:
    rng = random.Random(seed)
    drawn = [s.cells[rng.randrange(len(s.cells))] for _ in range(candidates)]
    pool = sorted(set(drawn), key=drawn.index)
    return score_pool(proxy, pool, lambda a: cell_genome(a, s.num_classes, s.resolution), batch_size=batch_size,
                      seed=seed, workers=workers, num_classes=s.num_classes)


__all__ = ["EDGES", "OPS", "Nb201Ops", "all_cells", "arch_of", "cell_genome", "default_start", "ops_of", "start_order",
           "run_bench_search", "truth_table"]
