"""``zenfx.search``: the run around the algorithm -- run folder, config, history, checkpoint, resume,
seed fitting, the executor, and the result.

RUN_DIR holds::

    config.json       everything that fixes the history (identity) + candidates/time limit/workers + versions
    history.jsonl     one row per candidate (id 0 = the seed): parent, edits, structure key, verdict,
                      figures, score, the budget that rejected it or the stage and reason it failed.
                      Deterministic: the same seed gives the same bytes for any number of workers.
    timings.jsonl     per candidate: worker wall and CPU seconds, proxy seconds, stage times, search
                      time at the end of its round (kept apart so history.jsonl stays deterministic)
    checkpoint.json   after every round, atomically: population, RNG state, counters, elapsed time
    checkpoint.before-short-round.json   the checkpoint before a last round that --candidates cut
                      short: a resume with more candidates runs that round again, whole, so that an
                      extended run is exactly the run started with the larger count
    best.json         the best genome (a zenfx genome: ``zenfx score best.json`` rebuilds it)
    best.py           the standalone export of the best network (when zenfx.export is available)
    summary.json      the result (``--json`` prints it)
    plots/            see zenfx.search.plots

Resume: rows past the checkpoint (a round cut by a kill) are dropped and the round is run again;
it proposes the same children (the RNG state is the checkpoint's) and scores them identically.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .budget import Budgets, fmt_figure
from .candidate import EvalSettings, evaluate, evaluate_task, init_scoring_worker, init_worker
from .config import (
    DEFAULT_BATCH,
    DEFAULT_CANDIDATES,
    DEFAULT_CROWN_REPEATS,
    DEFAULT_KIND_WEIGHTS,
    DEFAULT_POPULATION,
    DEFAULT_ROUND,
    DEFAULT_SCORE_DRAWS,
    DEFAULT_TOURNAMENT,
    EDIT_KINDS,
    SCORE_DRAWS,
    SearchConfig,
    differences,
)
from .evolution import Counters, Member, Population, Proposal, propose_round, rng_from_json, rng_state_to_json

CHECKPOINT_FORMAT = "zenfx-search-checkpoint"
BEFORE_SHORT_ROUND = "checkpoint.before-short-round.json"  # the state before a round the count cut short
NO_GRAD_PROXIES = ("zen", "params", "flops")  # forked workers are safe: no backward pass in them
FILES = ("config.json", "history.jsonl", "timings.jsonl", "checkpoint.json", "best.json", "best.py",
         "summary.json", "plots")


# --------------------------------------------------------------------------- small parsers


def parse_duration(text: str | float | int | None, what: str = "--time-limit") -> float | None:
    """``'2h'``, ``'30m'``, ``'90s'``, ``'1h30m'``, ``'45'`` (seconds) -> seconds."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not (math.isfinite(text) and text > 0):
            raise UsageError(f"{what} {text} must be positive")
        return float(text)
    raw = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"([0-9]*\.?[0-9]+)(h|m|min|s|sec)?", raw)
    if not raw or "".join(n + u for n, u in parts) != raw:
        raise UsageError(f"{what} '{text}' is not understood", hint="write e.g. 2h, 30m, 90s or 1h30m")
    unit = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0, "": 1.0}
    total = sum(float(n) * unit[u] for n, u in parts)
    if total <= 0:
        raise UsageError(f"{what} '{text}' must be positive")
    return total


def parse_kind_weights(text: dict[str, float] | str | None) -> dict[str, float] | None:
    """``'depth=2,width=1'`` (a kind not named weighs 1) -> {kind: weight}; ``'uniform'``/None -> None;
    ``'default'`` -> the default weights."""
    if isinstance(text, dict):
        raw = {str(k): v for k, v in text.items()}
    elif text is None or str(text).strip().lower() in ("", "uniform", "none"):
        return None
    elif str(text).strip().lower() == "default":
        return None if DEFAULT_KIND_WEIGHTS is None else dict(DEFAULT_KIND_WEIGHTS)
    else:
        raw = {}
        for part in str(text).split(","):
            name, eq, val = part.partition("=")
            if not eq:
                raise UsageError(f"--kind-weights '{text}' is not understood", hint="write e.g. depth=2,kernel=0.5")
            raw[name.strip()] = val.strip()
    out: dict[str, float] = {}
    for k, v in raw.items():
        if k not in EDIT_KINDS:
            raise UsageError(f"--kind-weights names '{k}', not one of {', '.join(EDIT_KINDS)}")
        try:
            w = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"--kind-weights {k}={v} is not a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise UsageError(f"--kind-weights {k}={v} must be a non-negative number")
        out[k] = w
    return dict(sorted(out.items())) or None


# --------------------------------------------------------------------------- result


@dataclass
class SearchProgress:
    """What a live display shows after each round."""

    proposed: int
    scored: int
    rejected: int
    failed: int
    best: float | None
    seed_score: float | None
    elapsed_s: float
    candidates: int | None
    time_limit: float | None
    rounds: int

    @property
    def per_second(self) -> float:
        return self.proposed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        etas = []
        if self.candidates and self.per_second > 0:
            etas.append(max(0.0, (self.candidates - self.proposed) / self.per_second))
        if self.time_limit:
            etas.append(max(0.0, self.time_limit - self.elapsed_s))
        return min(etas) if etas else None


@dataclass
class SearchResult:
    run_dir: str
    seed: dict[str, Any]  # id 0: score, figures, genome, shrink
    best: dict[str, Any] | None  # id, score, figures, genome
    counters: dict[str, int]
    elapsed_s: float
    worker_cpu_s: float
    main_cpu_s: float
    stopped: str  # "candidates" | "time-limit" | "cpu-limit"
    population: int
    population_median: float | None
    budgets: dict[str, Any]
    proxy: str
    stages: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # evaluated (proposals less duplicates), failed, and the most common error with its count
    failures: dict[str, Any] = field(default_factory=dict)

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best["score"]

    @property
    def all_failed(self) -> bool:
        """Every evaluated candidate failed: the run measured nothing (the CLI exits 6)."""
        f = self.failures
        return bool(f) and f["evaluated"] > 0 and f["failed"] == f["evaluated"]

    def failure_message(self) -> str:
        f = self.failures
        return (f"every candidate failed ({f['failed']} of {f['evaluated']}); the most common error "
                f"({f['top_count']}x): {f['top_error']}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": "zenfx-search-summary", "run_dir": self.run_dir, "proxy": self.proxy,
                "budgets": self.budgets, "seed": self.seed, "best": self.best, "counters": dict(self.counters),
                "elapsed_s": self.elapsed_s, "worker_cpu_s": self.worker_cpu_s, "main_cpu_s": self.main_cpu_s,
                "stopped": self.stopped,
                "population": self.population, "population_median": self.population_median,
                "stages": self.stages, "files": dict(self.files), "notes": list(self.notes),
                "failures": dict(self.failures)}


def failure_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many evaluated candidates (not the seed, not duplicates) failed, and the top error."""
    from collections import Counter

    evaluated = [r for r in rows if r.get("verdict") not in ("seed", "duplicate")]
    errors = Counter(str(r.get("error")) for r in evaluated if r.get("verdict") == "failed")
    top = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:1]
    return {"evaluated": len(evaluated), "failed": sum(errors.values()),
            "top_error": top[0][0] if top else None, "top_count": top[0][1] if top else 0}


# --------------------------------------------------------------------------- seed


def seed_genome(model: Any, kwargs: dict[str, Any] | None, input_size: Sequence[int] | None,
                resolution: int | None) -> Any:
    """The starting genome: a Genome, a genome JSON file, or any model spec (zoo:NAME included)."""
    from ..genome import Genome, as_genome, is_genome_spec
    from ..loading import parse_input_size, resolve_model

    if isinstance(model, Genome) or isinstance(model, dict) or is_genome_spec(model):
        g = as_genome(model)
        if input_size is not None or resolution is not None:
            size = parse_input_size(None, resolution, g.input_size) if input_size is None else tuple(input_size)
            g = Genome(g.seed, dict(g.kwargs), tuple(size), g.init_seed, list(g.edits), g.zenfx_version, g.seed_key,
                       g.seed_file)
        return g
    if not isinstance(model, str):
        raise UsageError("search needs a model spec string, a genome or a genome file (it rebuilds the model "
                         "in every worker from the spec)")
    if input_size is not None:
        size = tuple(int(x) for x in input_size)
    else:
        loaded = resolve_model(model, kwargs, device="meta")
        size = parse_input_size(None, resolution, loaded.default_input_size)
    return Genome(seed=model, kwargs=dict(kwargs or {}), input_size=tuple(size))


def seed_sources(genome: Any) -> dict[str, dict[str, str]]:
    """A file seed's source, by content hash, for the workers (which may not see the file)."""
    if genome.seed_file is None:
        return {}
    from ..loading import split_file_spec, user_source

    path = (split_file_spec(genome.seed) or (genome.seed, ""))[0]
    src = user_source(path, genome.seed_file.ref())
    return {genome.seed_file.sha256: {"name": src.name, "text": src.text}}


def fit_seed(state: Any, genome: Any) -> tuple[Any, dict[str, Any] | None, dict[str, Any]]:
    """The seed if it fits the budgets, else the largest uniform shrink that does (widths first, then
    depths). Returns (genome, shrink record or None, its figures). Infeasible: UsageError naming the
    smallest reachable figures."""
    figs = _figures(state, genome)
    broken = _broken(state.budgets, figs)
    if not broken:
        return genome, None, figs
    from ..genome import shrink

    tried: list[tuple[str, Any, dict[str, Any]]] = []
    for depth in (False, True):
        base = shrink(genome, 1.0, depth=True) if depth else genome
        if depth and len(base.edits) == len(genome.edits):
            continue  # no free block run: nothing to shrink in depth
        if depth:
            f_base = _figures(state, base)
            tried.append(("depths at their minimum", base, f_base))
            if not _broken(state.budgets, f_base):
                return base, {"widths": 1.0, "depths": "min", "from": figs, "broken": broken}, f_base
        if "depth" in broken and not depth:
            continue
        smallest = shrink(base, 1e-6)
        f_small = _figures(state, smallest)
        tried.append(("widths at their minimum" + (" and depths at their minimum" if depth else ""), smallest,
                      f_small))
        if _broken(state.budgets, f_small):
            continue
        lo, hi = 1e-6, 1.0  # lo fits, hi does not
        best = (smallest, f_small)
        for _ in range(14):
            mid = math.sqrt(lo * hi) if lo < 0.05 else 0.5 * (lo + hi)
            g = shrink(base, mid)
            f = _figures(state, g)
            if _broken(state.budgets, f):
                hi = mid
            else:
                lo, best = mid, (g, f)
        return best[0], {"widths": round(lo, 4), "depths": "min" if depth else "seed", "from": figs,
                         "broken": broken}, best[1]
    what, _, f = tried[-1] if tried else ("the seed", genome, figs)
    over = _broken(state.budgets, f)
    parts = [f"{k} {fmt_figure(k, f.get(k))} > {fmt_figure(k, getattr(state.budgets, k))}" for k in over]
    raise UsageError(f"infeasible budget: the smallest model the space allows ({what}) still has "
                     + ", ".join(parts), hint="raise the budget or start from a smaller seed")


# The calibrated predictor's error on the networks latency-budgeted searches return (benchmarks/
# bench_latency_calibration.py, benchmarks/results/latency_calibration_cpu_wall_clock.txt: 32 seeds
# shrunk to several budgets and randomly mutated, 224 px ImageNet / 32 px CIFAR, batch 1, 1 thread,
# wall clock, measured twice -- operators fresh and from the table). Raw operator sums were from 15%
# too low to 10% too high; the calibration's per-module-call overhead moves that to 9% low / 15% high.
PREDICTOR_CPU_ERROR = ("mean |error| 6%, from 9% too low to 15% too high (calibrated; 32 shrunk and mutated "
                       "search networks, 1 thread, on a shared 2-core AMD EPYC: benchmarks/results/"
                       "latency_calibration_cpu_wall_clock.txt)")


def latency_note(budgets: Budgets) -> str:
    """What a latency budget promises: the setting it predicts for, and how far to trust it."""
    setting = (f"{budgets.latency_device} {budgets.latency_dtype}, batch {budgets.latency_batch}, 1 thread "
               "(the search's workers run one torch thread each)")
    error = (f"expected error {PREDICTOR_CPU_ERROR}" if budgets.latency_device == "cpu"
             else "expected error: not measured for the calibrated predictor on this device "
                  "(raw sums: benchmarks/results/gpu_h100_predictor.txt)")
    return (f"latency is predicted, never timed per candidate: per-operator sums plus the table's calibrated "
            f"module-call overhead, for {setting}; {error}; --verify-latency times the best, and "
            "`zenfx report best.json --latency --predict --threads 1` compares both for the same setting")


def verified_latency(best: Any, budgets: Budgets) -> str:
    """Time the best network for real at the budget's setting (1 thread) and say how it compares."""
    from ..cost.latency import measure_latency
    from ..genome import Genome, build

    g = Genome.from_dict(best.genome)
    lat = measure_latency(build(g), g.input_size, budgets.latency_batch, budgets.latency_device,
                          budgets.latency_dtype, threads=1, min_run_time=1.0)
    predicted = best.figures.get("latency")
    assert budgets.latency is not None
    verdict = "within the budget" if lat.median_s <= budgets.latency else \
        f"OVER the budget by {100 * (lat.median_s / budgets.latency - 1):.0f}%"
    shown = "" if predicted is None else f", predicted {fmt_figure('latency', predicted)}"
    return (f"--verify-latency: the best network measures {fmt_figure('latency', lat.median_s)} "
            f"(IQR {fmt_figure('latency', lat.iqr_s)}{shown}; budget {fmt_figure('latency', budgets.latency)}): "
            f"{verdict}")


EXTREME_SHRINK = 0.25  # widths shrunk below a quarter: the start is a different, degenerate network


def shrink_warning(shrink: dict[str, Any] | None) -> str | None:
    """A warning when the seed had to shrink so far that the search starts from a degenerate copy of
    it (timm:regnetx_004 under 8 ms: every width x0.0625); None for a moderate shrink."""
    if not shrink or float(shrink.get("widths", 1.0)) > EXTREME_SHRINK:
        return None
    depth = " and every block run to its minimum depth" if shrink.get("depths") == "min" else ""
    return (f"the seed was shrunk to widths x{shrink['widths']}{depth} to fit the budget: the search starts from "
            "a degenerate copy of it; a smaller seed or a larger budget will likely find better networks")


EDIT_SITES = {"width": "no free channel group", "kernel": "no free kernel site", "depth": "no free block run"}


def check_editable(start: Any, kinds: Sequence[str], width_choices: dict[str, list[int]] | None = None) -> None:
    """Refuse a search whose start offers no edit of the requested kinds: every candidate would
    fail to mutate (``zenfx mutate`` refuses the same)."""
    from ..genome import current_state, edit_options

    sp = current_state(start)
    if edit_options(sp, tuple(kinds), width_choices):
        return
    have = [k for k in EDIT_KINDS if k not in kinds and edit_options(sp, (k,), width_choices)]
    hint = (f"add {', '.join(have)} to --kinds" if have
            else f"'zenfx space {start.seed}' shows what is frozen and why")
    raise UsageError(f"{start.seed} offers no edit of the kinds {', '.join(kinds)} ("
                     + "; ".join(EDIT_SITES.get(k, k) for k in kinds) + "): every candidate would fail", hint=hint)


def _figures(state: Any, genome: Any) -> dict[str, Any]:
    out = evaluate(state, genome.to_dict(), score=False, stop_early=False)
    if out["status"] == "failed":
        raise seed_error(f"the seed cannot be evaluated ({out['stage']})", out)
    return out["figures"]


def seed_error(what: str, out: dict[str, Any]) -> Exception:
    """The seed's failure as the error a command on the seed alone raises, so that its exit code is
    the README's (3: not traceable, 4: not VCNN-convertible, 5: numerical), not a usage error."""
    from ..errors import NotConvertibleError, NotTraceableError, NumericalError, ZenfxError

    by_code: dict[int, type[ZenfxError]] = {c.exit_code: c for c in (NotTraceableError, NotConvertibleError,
                                                                       NumericalError)}
    return by_code.get(out.get("exit_code") or 0, UsageError)(f"{what}: {out['error']}")


def _broken(budgets: Budgets, figs: dict[str, Any]) -> list[str]:
    return [k for k, lim in budgets.limits().items() if lim is not None and figs.get(k) is not None
            and figs[k] > lim]


# --------------------------------------------------------------------------- run folder


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def has_run(self) -> bool:
        return (self / "config.json").exists() or (self / "history.jsonl").exists()

    def truncate_jsonl(self, name: str, keep: int) -> None:
        """Keep the header line and the first ``keep`` complete rows: rows of a round cut by a kill
        (and a line cut mid-write) go; the round runs again and writes them identically."""
        p = self / name
        if not p.exists():
            return
        text = p.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete = [ln for ln in lines[:-1] if ln.strip()]  # the last piece has no newline: partial or ""
        header = complete[:1] if complete and '"zenfx_log"' in complete[0] else []
        body = complete[len(header):]
        new = "".join(ln + "\n" for ln in header + body[:keep])
        if new == text:
            return
        tmp = p.with_name(f".{p.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)


# --------------------------------------------------------------------------- the search


class _Run:
    """One search run: the state that lives across rounds and what writes it down."""

    def __init__(self, cfg: SearchConfig, rd: RunDir, progress: Callable[[SearchProgress], None] | None):
        from ..genome import Genome

        self.cfg = cfg
        self.rd = rd
        self.progress = progress
        self.start = Genome.from_dict(cfg.seed_genome if cfg.shrink is None else cfg.shrink["genome"])
        self.population = Population(cfg.population)
        self.counters = Counters()
        self.seen: set[str] = set()
        self.rng: Any = None
        self.seed_row: dict[str, Any] = {}
        self.best: Member | None = None
        self.elapsed = 0.0
        self.cpu = 0.0  # worker CPU seconds (time.process_time in the workers), summed
        self.main_cpu = 0.0  # this process's CPU seconds in the rounds (proposing, dedup, bookkeeping)
        self.rows = 0  # history rows after the header
        self.history: Any = None
        self.timings: Any = None
        self._keyer: Keyer | None = None
        self.mutator: Any = None
        self.pending_seed = False  # a fresh run: the seed is scored by the first worker
        # a rank-aggregated objective ("az", "zen+zico"): scores are ranks within the pool
        # (population + the round's candidates), recomputed every round
        from ..proxies.aggregate import Objective, is_aggregate, members_of

        self.objective = Objective(cfg.proxy, members_of(cfg.proxy)) if is_aggregate(cfg.proxy) else None
        self.round_scores: dict[int, float] = {}

    def task(self, genome: Any, key: str, **extra: Any) -> dict[str, Any]:
        """A worker's task for ``genome`` (structure key ``key``): with per-candidate draws, the
        seed of its own draw."""
        t = {"genome": genome.to_dict(), **extra}
        if self.cfg.score_draws == "per-candidate":
            t["draw"] = draw_seed(self.cfg.seed, key)
        return t

    def key_of(self, g: Any) -> str:
        if self.mutator is not None:
            return str(self.mutator.key(g))
        if self._keyer is None:
            self._keyer = Keyer(self.start)
        return self._keyer(g)

    # ---- logs
    def open_logs(self) -> None:
        from ..runlog import JsonlLog

        self.history = JsonlLog(self.rd / "history.jsonl", header={"format": "zenfx-search-history",
                                                                   "identity": self._header_identity()},
                                what="search history")
        self.timings = JsonlLog(self.rd / "timings.jsonl", header={"format": "zenfx-search-timings"},
                                what="search timings")

    def _header_identity(self) -> dict[str, Any]:
        """This run's identity as its history header says it: a header that names a lever at its
        pre-lever value (written while the lever was new) is the same run and keeps its header."""
        ident = self.cfg.identity()
        path = self.rd / "history.jsonl"
        try:
            with open(path, encoding="utf-8") as fh:
                found = json.loads(fh.readline()).get("header", {}).get("identity")
        except (OSError, ValueError, AttributeError):
            return ident
        if isinstance(found, dict) and _without_legacy(found) == _without_legacy(ident):
            return found
        return ident

    def settings(self) -> EvalSettings:
        c = self.cfg
        return EvalSettings(proxy=c.proxy, batch_size=c.batch_size, seed=c.seed, bn_stat=c.bn_stat,
                            mixup_gamma=c.mixup_gamma, num_classes=c.num_classes, data=c.data, budgets=c.budgets,
                            seed_genome=self.start.to_dict(), threads=1, device=c.device,
                            sources=seed_sources(self.start))

    # ---- checkpoint
    def checkpoint(self) -> None:
        from ..runlog import atomic_write_json

        atomic_write_json(self.rd / "checkpoint.json", {
            "format": CHECKPOINT_FORMAT, "version": 1, "rows": self.rows, "rng": rng_state_to_json(self.rng),
            "population": [m.to_dict() for m in self.population.members],
            "best": None if self.best is None else self.best.to_dict(), "seed": self.seed_row,
            "counters": self.counters.to_dict(), "elapsed_s": self.elapsed, "worker_cpu_s": self.cpu,
            "main_cpu_s": self.main_cpu}, indent=None)

    def restore(self) -> None:
        from ..runlog import read_json

        path = self.rd / "checkpoint.json"
        ck = read_json(path, "search checkpoint")
        before = self.rd / BEFORE_SHORT_ROUND
        if before.exists() and self._continues(ck):  # extended past a round the old count cut short:
            path, ck = before, read_json(before, "search checkpoint")  # run that round again, whole
        try:
            if ck.get("format") != CHECKPOINT_FORMAT:
                raise KeyError("format")
            self.rows = int(ck["rows"])
            self.rng = rng_from_json(ck["rng"])
            self.population = Population(self.cfg.population, [Member.from_dict(m) for m in ck["population"]])
            self.best = None if ck["best"] is None else Member.from_dict(ck["best"])
            self.seed_row = dict(ck["seed"])
            self.counters = Counters.from_dict(ck["counters"])
            self.elapsed = float(ck["elapsed_s"])
            self.cpu = float(ck.get("worker_cpu_s", 0.0))
            self.main_cpu = float(ck.get("main_cpu_s", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"search checkpoint {path} is corrupt (bad or missing field {exc})") from None
        self.rd.truncate_jsonl("history.jsonl", self.rows)
        self.rd.truncate_jsonl("timings.jsonl", self.rows)
        self.open_logs()
        rows = self.history.rows()
        if len(rows) < self.rows:
            raise UsageError(f"search history {self.rd / 'history.jsonl'} has {len(rows)} rows, the checkpoint "
                             f"expects {self.rows}: the run folder was damaged")
        self.seen = {r["key"] for r in rows if r.get("key")}

    # ---- seed
    def begin(self, evaluate_seed: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Score the seed (id 0) and write the first checkpoint. ``evaluate_seed`` runs it where the
        candidates run: in a worker, so this process never runs a backward pass before workers
        are forked (autograd's threads do not survive a fork: zico in a forked worker would fail)."""
        import random

        self.rng = random.Random(self.cfg.seed)
        key = self.key_of(self.start)
        out = evaluate_seed(self.task(self.start, key))
        if out["status"] == "failed":
            raise seed_error(f"the seed cannot be scored ({out['stage']})", out)
        if out["status"] != "scored":
            raise UsageError(f"the seed cannot be scored (budget): over budget ({out['rejected_by']})")
        self.seen.add(key)
        self.seed_row = {"id": 0, "score": out["score"], "figures": out["figures"], "genome": self.start.to_dict(),
                         "key": key}
        extra = {}
        if out.get("values") is not None:  # an aggregate: the seed alone scores 0; its members' values
            self.seed_row["values"] = extra["values"] = out["values"]
        row = {"id": 0, "round": 0, "parent": None, "verdict": "seed", "edits": [], "key": key,
               "score": out["score"], **extra, **_flat(out["figures"])}
        crowned = None
        if self.cfg.crown_repeats >= 2 and self.objective is None:  # the bar a first best must clear
            crowned = evaluate_seed(self.task(self.start, key, repeats=int(self.cfg.crown_repeats)))
            if crowned["status"] == "scored":
                self.seed_row["crown"] = crowned["score"]
                row.update(crown=crowned["score"], crown_repeats=len(crowned.get("repeat_values") or []))
                self.cpu += float(crowned.get("cpu_seconds", 0.0))
            else:
                crowned = None
        self.open_logs()
        self._append(row, out, 0.0, crowned)
        self.checkpoint()
        self.pending_seed = False

    def _append(self, row: dict[str, Any], out: dict[str, Any] | None, t: float,
                crowned: dict[str, Any] | None = None) -> None:
        self.history.append(row)
        trow = {"id": row["id"], "t": round(t, 4), "cpu_total": round(self.cpu + self.main_cpu, 4)}
        if out is not None:
            trow.update(seconds=round(sum(out.get("timings", {}).values()), 6),
                        cpu=round(out.get("cpu_seconds", 0.0), 6), proxy=out.get("proxy_seconds"),
                        proxy_cpu=out.get("proxy_cpu_seconds"), stages=out.get("timings"))
        if crowned is not None:
            trow.update(crown_cpu=round(crowned.get("cpu_seconds", 0.0), 6), crown_proxy=crowned.get("proxy_seconds"))
        self.timings.append(trow)
        self.rows += 1

    # ---- rounds
    def round(self, ex: Any) -> None:
        from ..genome import Genome
        from ..genome import mutate as mutate_genome

        c = self.cfg
        k = c.round_size if c.candidates is None else min(c.round_size, c.candidates - self.counters.proposed)
        if k < c.round_size:  # the candidate count cuts this round short: keep the state before it, so that
            import shutil  # a run extended later runs it whole, exactly as a run started with the larger count

            shutil.copyfile(self.rd / "checkpoint.json", self.rd / BEFORE_SHORT_ROUND)
        else:
            (self.rd / BEFORE_SHORT_ROUND).unlink(missing_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()

        def mutate(parent: Any, rng: Any, n: int) -> Any:
            if self.mutator is not None:
                return self.mutator.mutate(parent, rng, n)
            return mutate_genome(parent, rng, edits=n, kinds=tuple(c.kinds), width_choices=c.width_choices,
                                 kind_weights=c.kind_weights)

        props = propose_round(k=k, next_id=self.rows, population=self.population, seed_genome=self.start,
                              rng=self.rng, mutate=mutate, key_of=self.key_of, seen=self.seen,
                              genome_from_dict=Genome.from_dict, counters=self.counters, tournament=c.tournament)
        todo = [p for p in props if p.error is None and not p.duplicate]
        results: dict[int, Any] = {}
        for o in ex.map(evaluate_task, [self.task(p.genome, p.key) for p in todo]):
            results[todo[o.index].id] = o
        crowns = self._crowning(ex, todo, results)
        self.elapsed += time.perf_counter() - t0
        self.main_cpu += time.process_time() - c0
        self.counters.rounds += 1
        if self.objective is not None:
            self.round_scores = self._pool_scores(props, results)
        for p in props:
            self._apply(p, results.get(p.id), crowns.get(p.id))
        if self.objective is not None:
            self._rerank()
        self.checkpoint()
        if self.progress is not None:
            self.progress(self.snapshot())

    def _bar(self) -> float:
        """What a child must beat to be a contender for the crown: the best's crowned mean."""
        if self.best is None:
            crown = self.seed_row.get("crown")
            return -math.inf if crown is None else float(crown)
        return self.best.crown if self.best.crown is not None else self.best.score

    def _crowning(self, ex: Any, todo: list[Proposal], results: dict[int, Any]) -> dict[int, Any]:
        """Rescore (``crown_repeats`` repeats) every scored child of the round whose one-repeat score
        beats the best's crowned score *at the round's start*: the set depends on the scores alone,
        so the history stays the same for any number of workers."""
        n = int(self.cfg.crown_repeats)
        if n < 2 or self.objective is not None:  # an aggregate is re-ranked each round instead
            return {}
        bar = self._bar()
        contenders = [p for p in todo if (o := results.get(p.id)) is not None and o.status == "ok"
                      and o.value["status"] == "scored" and o.value["score"] > bar]
        out: dict[int, Any] = {}
        for o in ex.map(evaluate_task, [self.task(p.genome, p.key, repeats=n) for p in contenders]):
            out[contenders[o.index].id] = o
        return out

    def _apply(self, p: Proposal, o: Any, crown: Any = None) -> None:
        """One proposal's history row and its effect on the population, counters and CPU total."""
        self.counters.proposed += 1
        out = o.value if (o is not None and o.status == "ok") else None
        row = self._row(p, o, out)
        verdict = row["verdict"]
        crowned = crown.value if (crown is not None and crown.status == "ok"
                                  and crown.value["status"] == "scored") else None
        if verdict == "scored" and crowned is not None:
            row.update(crown=crowned["score"], crown_repeats=len(crowned.get("repeat_values") or []))
        if verdict == "scored" and self.objective is not None:
            self.counters.scored += 1
            row.update(score=self.round_scores[p.id], values=out["values"])
            self.population.members.append(Member(p.id, float(row["score"]), p.genome.to_dict(),
                                                  dict(out["figures"]), p.parent, values=dict(out["values"])))
        elif verdict == "scored":
            self._admit(p, row, out, crowned)
        else:
            self._count(verdict)
        for spent in (out, crowned):
            if spent is not None:
                self.cpu += float(spent.get("cpu_seconds", 0.0))
        self._append(row, out, self.elapsed, crowned)

    def _row(self, p: Proposal, o: Any, out: dict[str, Any] | None) -> dict[str, Any]:
        """The history row of a proposal: its verdict, figures and score, or where and why it failed."""
        row: dict[str, Any] = {"id": p.id, "round": self.counters.rounds, "parent": p.parent, "verdict": "failed",
                               "edits": p.edits, "key": p.key}
        if p.error is not None:
            row.update(stage="mutate", error=p.error)
        elif p.duplicate:
            row.update(verdict="duplicate")
        elif out is None:
            row.update(stage="worker", error=(o.error if o is not None else "no outcome") or o.status)
        else:
            row.update(_flat(out["figures"]))
            if out["status"] == "scored":
                row.update(verdict="scored", score=out["score"])
            elif out["status"] == "rejected":
                row.update(verdict="rejected", rejected_by=out["rejected_by"])
            else:
                row.update(stage=out["stage"], error=out["error"])
        if p.redraws:
            row["redraws"] = p.redraws
        if self.mutator is not None and p.genome is not None:
            row["kwargs"] = p.genome.kwargs
        return row

    def _count(self, verdict: str) -> None:
        if verdict == "rejected":
            self.counters.rejected += 1
        elif verdict == "duplicate":
            self.counters.duplicates += 1
        else:
            self.counters.failed += 1

    def _admit(self, p: Proposal, row: dict[str, Any], out: dict[str, Any], crowned: dict[str, Any] | None) -> None:
        """A scored child joins the population; it is the best if its score (crowning: its crowned
        mean) beats the best's."""
        self.counters.scored += 1
        m = Member(p.id, float(row["score"]), p.genome.to_dict(), dict(out["figures"]), p.parent,
                   None if crowned is None else float(crowned["score"]))
        self.population.insert(m)
        if self.cfg.crown_repeats >= 2:
            if m.crown is not None and m.crown > self._bar():
                self.best = m
        elif self.best is None or m.score > self.best.score:
            self.best = m

    # ---- a rank-aggregated objective
    def _pool_scores(self, props: list[Proposal], results: dict[int, Any]) -> dict[int, float]:
        """Each of the round's scored candidates' aggregate within the pool: the population as it stood
        plus the round's scored candidates, in proposal order (what ``_rerank`` then ranks again)."""
        from ..proxies.aggregate import aggregate_scores

        new: list[tuple[int, dict[str, Any]]] = []
        for p in props:
            o = results.get(p.id)
            if p.error is None and not p.duplicate and o is not None and o.status == "ok" \
                    and o.value.get("status") == "scored":
                new.append((p.id, o.value["values"]))
        if not new:
            return {}
        old = [m.values or {} for m in self.population.members]
        agg = aggregate_scores(self.objective, old + [v for _, v in new])  # type: ignore[arg-type]
        return {pid: float(a) for (pid, _), a in zip(new, agg[len(old):], strict=True)}

    def _rerank(self) -> None:
        """Every member re-scored within the pool, the lowest dropped down to the population size; the
        best is the top of that pool (its score: its aggregate there)."""
        from ..proxies.aggregate import aggregate_scores

        obj = self.objective
        self.population.rerank(lambda ms: aggregate_scores(obj, [m.values or {} for m in ms]))  # type: ignore[arg-type]
        self.best = self.population.best()

    def snapshot(self) -> SearchProgress:
        c = self.counters
        return SearchProgress(c.proposed, c.scored, c.rejected, c.failed,
                              None if self.best is None else self.best.score, self.seed_row.get("score"),
                              self.elapsed, self.cfg.candidates, self.cfg.time_limit, c.rounds)

    def _continues(self, ck: dict[str, Any]) -> bool:
        """Whether the run goes on past checkpoint ``ck`` under the settings it is resumed with."""
        try:
            proposed, elapsed = int(ck["counters"]["proposed"]), float(ck["elapsed_s"])
        except (KeyError, TypeError, ValueError):
            return False
        c = self.cfg
        return ((c.candidates is None or proposed < c.candidates)
                and (c.time_limit is None or elapsed < c.time_limit))

    def done(self) -> str | None:
        c = self.cfg
        if c.candidates is not None and self.counters.proposed >= c.candidates:
            return "candidates"
        if c.time_limit is not None and self.elapsed >= c.time_limit:
            return "time-limit"
        if c.cpu_limit is not None and self.cpu + self.main_cpu >= c.cpu_limit:
            return "cpu-limit"
        return None


class Keyer:
    """Structure keys for dedup, cheap where that is exact. Without depth edits a genome's network
    is fixed by the last value each edit gave its target (a group's width, a conv's kernel): two
    genomes with the same final values -- values equal to the seed's dropped -- are the same network,
    and different values give different layer shapes. That key costs microseconds; a genome with a
    depth edit gets ``zenfx.structure_key`` (a meta build, ~30 ms). The two kinds of key never
    meet, so a depth-edited genome that happens to equal a width-only one is not caught (rare: a
    depth edit and its undo)."""

    def __init__(self, start: Any) -> None:
        from ..genome import current_state

        base = start.with_edits([])
        sp = current_state(base)
        self.base = {("width", g.id): g.channels for g in sp.groups}
        self.base.update({("kernel", k.path): k.kernel for k in sp.kernels})

    def __call__(self, g: Any) -> str:
        import hashlib
        import json

        from ..genome import structure_key

        if any(e.kind == "depth" for e in g.edits):
            return structure_key(g)
        final: dict[tuple[str, str], int] = {}
        for e in g.edits:
            final[(e.kind, e.target)] = e.value
        items = sorted([k, t, v] for (k, t), v in final.items() if self.base.get((k, t)) != v)
        text = json.dumps([g.seed_name(), g.kwargs, list(g.input_size), g.init_seed, items], sort_keys=True,
                          default=str)
        return "e" + hashlib.sha256(text.encode()).hexdigest()[:15]


def _without_legacy(ident: dict[str, Any]) -> dict[str, Any]:
    from .config import LEGACY

    return json.loads(json.dumps({k: v for k, v in ident.items() if not (k in LEGACY and v == LEGACY[k])},
                                 sort_keys=True, default=str))


def draw_seed(seed: int, key: str) -> int:
    """The scoring seed of one structure's own draw: a function of the run's seed and the structure
    key alone, so the same for any number of workers, on resume, and for a rescore of the same net."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()[:4], "big") >> 1


def _flat(figs: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(v) if k in ("params", "macs", "depth", "memory") and v is not None else v)
            for k, v in figs.items()}


def search(model: Any, *, out: str | os.PathLike[str], kwargs: dict[str, Any] | None = None,
           input_size: Sequence[int] | None = None, resolution: int | None = None, proxy: str = "zen",
           batch_size: int = DEFAULT_BATCH, bn_stat: str = "official", mixup_gamma: float = 1e-2,
           num_classes: int = 1000, data: str | None = None,
           budget_params: Any = None, budget_macs: Any = None, budget_latency: Any = None, budget_memory: Any = None,
           max_depth: Any = None, latency_device: str = "cpu", latency_dtype: str = "float32", latency_batch: int = 1,
           population: int = DEFAULT_POPULATION, round_size: int = DEFAULT_ROUND,
           candidates: int | None = DEFAULT_CANDIDATES, time_limit: Any = None, cpu_limit: Any = None, seed: int = 0,
           kinds: Sequence[str] = EDIT_KINDS, width_choices: dict[str, list[int]] | None = None,
           tournament: int | None = None, kind_weights: dict[str, float] | str | None = "default",
           crown_repeats: int | None = None, score_draws: str | None = None, workers: int | None = None,
           backend: str = "local", ray_address: str | None = None, device: str = "cpu", resume: bool = False,
           plots: bool = True, export: bool = True, mutator: Any = None,
           verify_latency: bool = False, progress: Callable[[SearchProgress], None] | None = None,
           notify: Callable[[str], None] | None = None) -> SearchResult:
    """Evolve ``model`` (a spec, genome or genome file) under budgets; write RUN_DIR ``out``.

    The paper's CIFAR search used population 512 and 480,000 proposals on GPUs; the defaults here
    (population 64, 500 candidates) finish in minutes on a laptop CPU. ``candidates`` counts
    proposals (scored, rejected and failed alike); ``time_limit`` ('2h', '30m', seconds) stops the
    run at the end of the round that crosses it; ``cpu_limit`` likewise for the CPU seconds of the workers
    and this process together. Same ``seed`` and ``round_size`` -> same history.jsonl for any ``workers``.
    ``resume=True`` continues the run in ``out`` exactly (candidates / limits / workers may change);
    ``device`` scores there ("cuda" on Ray: one GPU per worker).
    """
    opts = dict(locals())
    say = notify or (lambda _msg: None)
    budgets = Budgets.parse(params=budget_params, macs=budget_macs, latency=budget_latency, memory=budget_memory,
                            max_depth=max_depth, latency_device=latency_device, latency_dtype=latency_dtype,
                            latency_batch=latency_batch)
    _check_args(proxy, population, round_size, candidates, batch_size, kinds, bn_stat,
                DEFAULT_TOURNAMENT if tournament is None else tournament)
    inherit = _checked_levers(opts)
    ends = _ends(opts)
    rd = RunDir(out)
    check_run_dir(rd.path)
    cfg = _config(opts, seed_genome(model, kwargs, input_size, resolution), budgets, ends)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the seed is scored here exactly as a worker scores a candidate
    try:
        with _ray_if_asked(cfg):
            run, state = _open_run(cfg, rd, resume, progress, say, mutator, inherit)
            return _loop(run, state, plots, export, say, verify_latency)
    finally:
        torch.set_num_threads(threads)


def _checked_levers(o: dict[str, Any]) -> list[str]:
    """Check the levers of ``search``'s arguments (``o``) and name those left at their defaults: on
    resume they take the run's own values (the run may predate a lever or its default)."""
    _check_crowning(o["proxy"], o["crown_repeats"])
    if o["score_draws"] is not None and o["score_draws"] not in SCORE_DRAWS:
        raise UsageError(f"--score-draws must be one of {', '.join(SCORE_DRAWS)}, got '{o['score_draws']}'")
    defaults = {"tournament": o["tournament"] is None, "kind_weights": o["kind_weights"] == "default",
                "crown_repeats": o["crown_repeats"] is None, "score_draws": o["score_draws"] is None}
    return [k for k, default in defaults.items() if default]


def _check_crowning(proxy: str, crown_repeats: int | None) -> None:
    from ..proxies.aggregate import is_aggregate

    if crown_repeats is not None and crown_repeats < 0:
        raise UsageError(f"--crown-repeats must be >= 0, got {crown_repeats}")
    if crown_repeats is not None and crown_repeats >= 2 and is_aggregate(proxy):
        raise UsageError(f"--crown-repeats rescores one proxy's score; the rank-aggregated '{proxy}' is re-ranked "
                         "within the population every round instead", hint="drop --crown-repeats")


def _ends(o: dict[str, Any]) -> tuple[float | None, float | None, str, str]:
    """The time and CPU limits (one end at least), the backend and the checked scoring device."""
    limit = parse_duration(o["time_limit"])
    cpu_lim = parse_duration(o["cpu_limit"], "--cpu-limit")
    if o["candidates"] is None and limit is None and cpu_lim is None:
        raise UsageError("a search needs an end: --candidates N, --time-limit and/or --cpu-limit")
    backend = str(o["backend"]).strip().lower()
    return limit, cpu_lim, backend, _device(o["device"], backend)


def _config(o: dict[str, Any], genome: Any, budgets: Budgets, ends: tuple[Any, Any, str, str]) -> SearchConfig:
    """The run's configuration from ``search``'s arguments (``o``), its seed genome, budgets and ends."""
    limit, cpu_lim, backend, device = ends
    model, tournament, crown_repeats = o["model"], o["tournament"], o["crown_repeats"]
    return SearchConfig(
        seed_genome=genome.to_dict(), seed_spec=str(model) if isinstance(model, str) else genome.seed,
        proxy=o["proxy"].strip().lower(), batch_size=int(o["batch_size"]), bn_stat=o["bn_stat"],
        mixup_gamma=float(o["mixup_gamma"]), num_classes=int(o["num_classes"]), data=o["data"],
        budgets=budgets.to_dict(), population=int(o["population"]), round_size=int(o["round_size"]),
        seed=int(o["seed"]), kinds=tuple(o["kinds"]), width_choices=o["width_choices"],
        tournament=DEFAULT_TOURNAMENT if tournament is None else int(tournament),
        kind_weights=parse_kind_weights(o["kind_weights"]),
        crown_repeats=DEFAULT_CROWN_REPEATS if crown_repeats is None else int(crown_repeats),
        score_draws=o["score_draws"] or DEFAULT_SCORE_DRAWS,
        mutator=None if o["mutator"] is None else str(o["mutator"].name),
        candidates=None if o["candidates"] is None else int(o["candidates"]), time_limit=limit, cpu_limit=cpu_lim,
        workers=_workers(o["workers"]), backend=backend, ray_address=o["ray_address"], device=device)


def check_run_dir(path: Path) -> None:
    """Refuse a run folder that cannot be one, before any work: an existing file, a path under a
    file, a folder (or the nearest existing parent of a new one) that this user cannot write."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file, not a run folder", hint="choose a folder for --out")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"cannot create the run folder --out {path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the run folder --out {path}: {probe} is not writable")


def _device(device: str | None, backend: str) -> str:
    """The scoring device, canonical ("cuda:1"), checked on this machine unless Ray workers (maybe
    on other machines) will score."""
    from ..devices import parse_device

    return str(parse_device(device, here=backend != "ray"))


def _ray_if_asked(cfg: SearchConfig) -> Any:
    """Ray running for the whole search when it runs on Ray, started *before* the driver's own
    set-up (the seed's checks and shrink): Ray's workers import torch, zenfx and the seed's model
    library meanwhile, so the actors the executor places on them later start warm."""
    import contextlib

    if cfg.backend != "ray":
        return contextlib.nullcontext()
    from ..executor.ray_backend import ray_session

    return ray_session(max(1, cfg.workers), cfg.ray_address, preload=worker_preload())


def worker_preload() -> list[str]:
    """What a search's Ray workers import before their actors start: the candidate code and the
    model libraries the seed needed here (it was resolved in this process just before)."""
    import sys

    libraries = [m for m in ("torchvision", "timm", "zenfx.zoo.registry") if m in sys.modules]
    return ["zenfx.search.candidate", "zenfx.scoring", "zenfx.vcnn.convert", "zenfx.cost.memory", *libraries]


def _check_args(proxy: str, population: int, round_size: int, candidates: int | None, batch_size: int,
                kinds: Sequence[str], bn_stat: str, tournament: int = 1) -> None:
    from ..proxies.aggregate import is_aggregate, members_of
    from ..proxies.base import get_proxy

    members_of(proxy) if is_aggregate(proxy) else get_proxy(proxy)
    if population < 1:
        raise UsageError(f"--population must be at least 1, got {population}")
    if round_size < 1:
        raise UsageError(f"--round must be at least 1, got {round_size}")
    if candidates is not None and candidates < 0:
        raise UsageError(f"--candidates must be >= 0, got {candidates}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    bad = [k for k in kinds if k not in EDIT_KINDS]
    if bad or not kinds:
        raise UsageError(f"--kinds must name some of {', '.join(EDIT_KINDS)}, got {', '.join(kinds) or 'none'}")
    if tournament < 1:
        raise UsageError(f"--tournament must be at least 1, got {tournament}")
    if bn_stat not in ("official", "batch"):
        raise UsageError(f"--bn-stat must be official or batch, got '{bn_stat}'")


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    return int(workers)


def _open_run(cfg: SearchConfig, rd: RunDir, resume: bool, progress: Any, say: Callable[[str], None],
              mutator: Any = None, inherit: Sequence[str] = ()) -> tuple[_Run, Any]:
    if resume:
        return _resume_run(cfg, rd, progress, say, mutator, inherit)
    return _new_run(cfg, rd, progress, say, mutator)


def _resume_run(cfg: SearchConfig, rd: RunDir, progress: Any, say: Callable[[str], None], mutator: Any,
                inherit: Sequence[str]) -> tuple[_Run, Any]:
    """The run in ``rd`` as its checkpoint left it, if ``cfg`` agrees with its config (levers not
    given take the run's own values)."""
    from ..runlog import atomic_write_json, read_json

    if not (rd / "config.json").exists():
        raise UsageError(f"nothing to resume in {rd.path}: no config.json", hint="drop --resume to start a run")
    old = read_json(rd / "config.json", "search config")
    old_cfg = SearchConfig.from_dict(old)
    for k in inherit:
        setattr(cfg, k, getattr(old_cfg, k))
    diff = differences({k: v for k, v in old_cfg.identity().items() if k != "shrink"},
                       {k: v for k, v in cfg.identity().items() if k != "shrink"})
    if diff:
        lines = [line for k in diff for line in _setting_lines(k, old.get(k), getattr(cfg, k))]
        raise UsageError(f"cannot resume {rd.path}: {len(lines)} setting(s) differ from the run's "
                         "(give none of them again, or the run's values; candidates, time limit and workers "
                         "may change):\n" + "\n".join(f"  {line}" for line in lines))
    cfg.shrink = old_cfg.shrink
    atomic_write_json(rd / "config.json", cfg.document())
    run = _Run(cfg, rd, progress)
    run.mutator = mutator
    state = init_worker(run.settings())
    if (rd / "checkpoint.json").exists():
        run.restore()
        say(f"resuming {rd.path} at candidate {run.counters.proposed} (round {run.counters.rounds})")
    else:  # killed before the seed's checkpoint: start over in the same folder
        for name in ("history.jsonl", "timings.jsonl"):
            (rd / name).unlink(missing_ok=True)
        run.pending_seed = True
    return run, state


def _new_run(cfg: SearchConfig, rd: RunDir, progress: Any, say: Callable[[str], None], mutator: Any
             ) -> tuple[_Run, Any]:
    """A fresh run folder: the seed checked (editable, within budget or shrunk to fit), the config written."""
    from ..genome import Genome
    from ..runlog import atomic_write_json

    if rd.has_run():
        raise UsageError(f"{rd.path} already holds a search",
                         hint="add --resume to continue it, or choose another --out")
    if mutator is None:  # before the run folder exists: a refused search leaves nothing behind
        check_editable(Genome.from_dict(cfg.seed_genome), cfg.kinds, cfg.width_choices)
    created = not rd.path.exists()
    try:
        rd.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the run folder --out {rd.path}: {exc.strerror or exc}") from None
    settings_run = _Run(cfg, rd, progress)
    state = init_worker(settings_run.settings())
    try:
        start, shrink, figs = fit_seed(state, Genome.from_dict(cfg.seed_genome))
    except Exception:
        if created and not any(rd.path.iterdir()):
            rd.path.rmdir()  # a seed that cannot be searched leaves no empty run folder behind
        raise
    if shrink is not None:
        cfg.shrink = {**shrink, "genome": start.to_dict()}
        say(f"the seed breaks the budget ({', '.join(shrink['broken'])}): shrunk uniformly to widths x"
            f"{shrink['widths']} (depths: {shrink['depths']}) -> "
            + ", ".join(f"{k} {fmt_figure(k, v)}" for k, v in figs.items()))
        warning = shrink_warning(cfg.shrink)
        if warning:
            say(f"warning: {warning}")
    atomic_write_json(rd / "config.json", cfg.document())
    run = _Run(cfg, rd, progress)
    run.mutator = mutator
    state = init_worker(run.settings())
    run.pending_seed = True
    return run, state


def _short(v: Any, width: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def _setting_lines(key: str, old: Any, new: Any) -> list[str]:
    """One short line per differing setting; a dict setting (budgets, the seed genome) by its keys."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if differences({k: old.get(k)}, {k: new.get(k)})]
        if keys:
            return [f"{key}.{k}: {_short(old.get(k))} in the run, {_short(new.get(k))} now" for k in keys]
    return [f"{key}: {_short(old)} in the run, {_short(new)} now"]


def resume_arguments(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``search`` arguments of the run in ``out``, read from its config.json, so that a resume
    needs nothing but the folder (``zenfx search --out RUN --resume``); arguments given again
    override these and must agree with the run, as before."""
    from ..runlog import read_json

    rd = RunDir(out)
    if not (rd / "config.json").exists():
        raise UsageError(f"nothing to resume in {rd.path}: no config.json", hint="drop --resume to start a run")
    cfg = SearchConfig.from_dict(read_json(rd / "config.json", "search config"))
    g, b = cfg.seed_genome, cfg.budgets
    # a file seed by its genome (which finds the file from any folder), not the path typed back then
    model = g if g.get("seed_file") else (cfg.seed_spec or g)
    return {"model": model, "kwargs": dict(g.get("kwargs") or {}),
            "input_size": tuple(g["input_size"]), "proxy": cfg.proxy, "batch_size": cfg.batch_size,
            "bn_stat": cfg.bn_stat, "mixup_gamma": cfg.mixup_gamma, "num_classes": cfg.num_classes,
            "data": cfg.data, "budget_params": b.get("params"), "budget_macs": b.get("macs"),
            "budget_latency": b.get("latency"), "budget_memory": b.get("memory"), "max_depth": b.get("depth"),
            "latency_device": b.get("latency_device", "cpu"), "latency_dtype": b.get("latency_dtype", "float32"),
            "latency_batch": b.get("latency_batch", 1), "population": cfg.population,
            "round_size": cfg.round_size, "seed": cfg.seed, "kinds": tuple(cfg.kinds),
            "width_choices": cfg.width_choices, "device": cfg.device, "candidates": cfg.candidates,
            "time_limit": cfg.time_limit, "cpu_limit": cfg.cpu_limit, "workers": cfg.workers,
            "backend": cfg.backend, "ray_address": cfg.ray_address}


def _loop(run: _Run, state: Any, plots: bool, export: bool, say: Callable[[str], None],
          verify_latency: bool = False) -> SearchResult:
    from ..executor import make_executor

    cfg = run.cfg
    stopped = None if run.pending_seed else run.done()
    if stopped is None:
        init_arg = run.settings().to_dict()
        if cfg.backend == "ray":  # actors on other machines have no disk cache of the space
            init_arg["seed_space"] = _seed_space(run.start)
        with make_executor(cfg.backend, cfg.workers, ray_address=cfg.ray_address, init=init_scoring_worker,
                           init_arg=init_arg, threads_per_worker=1, **executor_options(cfg)) as ex:
            if getattr(ex, "requested", ex.workers) > ex.workers:
                say(f"{ex.workers} of {cfg.workers} workers started: the Ray cluster's GPUs hold one each")
            if run.pending_seed:
                run.begin(lambda task: _evaluate_one(ex, task))
            stopped = run.done()
            while stopped is None:
                run.round(ex)
                stopped = run.done()
    return finish(run, stopped, plots=plots, export=export, say=say, verify_latency=verify_latency)


def _seed_space(genome: Any) -> dict[str, Any] | None:
    """The seed's probed space (this process has it already), for workers to adopt instead of
    probing the seed again (seconds for an ImageNet model); None if it cannot be had."""
    from ..genome import seed_space_document

    try:
        return seed_space_document(genome)
    except Exception:  # noqa: BLE001 - the workers probe for themselves
        return None


def executor_options(cfg: SearchConfig) -> dict[str, Any]:
    """What the executor needs beyond workers and init (``executor.placement_options``): a proxy that
    needs gradients makes a fork unsafe."""
    from ..executor import placement_options

    return placement_options(cfg.backend, cfg.device, fork_unsafe=cfg.proxy not in NO_GRAD_PROXIES)


def _evaluate_one(ex: Any, task: dict[str, Any]) -> dict[str, Any]:
    """The seed's task, with every figure (no early stop), on a worker (``repeats``: rescored for the crown)."""
    outcome = list(ex.map(evaluate_task, [{**task, "stop_early": False}]))[0]
    if not outcome.ok:
        raise UsageError(f"the seed cannot be scored: {outcome.error}")
    return outcome.value


def finish(run: _Run, stopped: str, *, plots: bool = True, export: bool = True,
           say: Callable[[str], None] = lambda _m: None, verify_latency: bool = False) -> SearchResult:
    """Write what a run leaves behind (best.json, best.py, summary.json, plots) and its result."""
    from ..runlog import atomic_write_json

    rd = run.rd
    files = {"config": str(rd / "config.json"), "history": str(rd / "history.jsonl"),
             "timings": str(rd / "timings.jsonl"), "checkpoint": str(rd / "checkpoint.json")}
    notes = _write_best(run, files, export)
    notes += _result_notes(run, say, verify_latency)
    res = _result(run, stopped, files, notes)
    atomic_write_json(rd / "summary.json", res.to_dict())
    files["summary"] = str(rd / "summary.json")
    if plots:
        notes.extend(_plots(rd, files))
    res.files = files
    atomic_write_json(rd / "summary.json", res.to_dict())
    return res


def _write_best(run: _Run, files: dict[str, str], export: bool) -> list[str]:
    """best.json and (``export``) best.py; notes for what could not be written."""
    best, rd = run.best, run.rd
    if best is None:
        return []
    from ..genome import Genome

    Genome.from_dict(best.genome).save(rd / "best.json")
    files["best"] = str(rd / "best.json")
    if not export:
        return []
    note = _export(best.genome, rd / "best.py")
    if note:
        return [note]
    files["best_py"] = str(rd / "best.py")
    return []


def _result_notes(run: _Run, say: Callable[[str], None], verify_latency: bool) -> list[str]:
    """What a user should know about the result: the latency budget, a best below the seed, a shrink."""
    notes: list[str] = []
    best = run.best
    budgets = Budgets.from_dict(run.cfg.budgets)
    if budgets.latency is not None:
        notes.append(latency_note(budgets))
        if verify_latency and best is not None:
            say("timing the best network (--verify-latency) ...")
            notes.append(verified_latency(best, budgets))
    seed_score = run.seed_row.get("score")
    if best is not None and seed_score is not None and best.score <= seed_score:
        notes.append(f"no candidate beat the seed: the best candidate (#{best.id}, {best.score:.3f}) scores "
                     f"{'below' if best.score < seed_score else 'the same as'} the seed ({seed_score:.3f}); "
                     "best.json and best.py hold that candidate, not the seed (history row 0; its genome is "
                     "summary.json's seed.genome)")
    if run.cfg.shrink is not None:
        notes.append(f"the seed broke the budget ({', '.join(run.cfg.shrink['broken'])}) and was shrunk uniformly "
                     f"(widths x{run.cfg.shrink['widths']}, depths: {run.cfg.shrink['depths']})")
        warning = shrink_warning(run.cfg.shrink)
        if warning:
            notes.append(warning)
    return notes


def _result(run: _Run, stopped: str, files: dict[str, str], notes: list[str]) -> SearchResult:
    """The SearchResult, with the per-stage table and the failure summary (a warning note first when
    more than half the candidates failed)."""
    best = run.best
    stages = {}
    try:
        from .stages import stage_table

        stages = stage_table(run.seed_row["genome"], None if best is None else best.genome)
    except Exception as exc:  # noqa: BLE001 - the stage table is a convenience
        notes.append(f"no per-stage table: {type(exc).__name__}: {exc}")
    crown = {} if best is None or best.crown is None else {"crown": best.crown, "crown_repeats": run.cfg.crown_repeats}
    res = SearchResult(
        run_dir=str(run.rd.path), seed=run.seed_row,
        best=None if best is None else {"id": best.id, "score": best.score, "figures": best.figures,
                                        "genome": best.genome, "parent": best.parent, **crown},
        counters=run.counters.to_dict(), elapsed_s=run.elapsed, worker_cpu_s=run.cpu, main_cpu_s=run.main_cpu,
        stopped=stopped,
        population=len(run.population), population_median=run.population.median_score(),
        budgets=run.cfg.budgets, proxy=run.cfg.proxy, stages=stages, files=files, notes=notes,
        failures=failure_summary(run.history.rows() if run.history is not None else []))
    f = res.failures
    if res.all_failed:
        notes.insert(0, res.failure_message())
    elif f["failed"] * 2 > f["evaluated"]:
        notes.insert(0, f"{f['failed']} of {f['evaluated']} candidates failed; the most common error "
                        f"({f['top_count']}x): {f['top_error']}")
    return res


def _plots(rd: RunDir, files: dict[str, str]) -> list[str]:
    """The run's plots; a note when there was nothing to plot or plotting failed (never fatal)."""
    try:
        from .plots import draw

        written = draw(rd.path)
        files["plots"] = str(rd / "plots")
        return [] if written else ["no plots: nothing scored"]
    except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose the run's result
        return [f"plots failed: {type(exc).__name__}: {exc}"]


def _export(genome: dict[str, Any], path: Path) -> str | None:
    try:
        from .. import export as export_mod  # type: ignore[attr-defined]
    except ImportError:
        return "best.py not written: zenfx.export is not available in this build"
    fn = getattr(export_mod, "export_model", None)
    if fn is None:
        return "best.py not written: zenfx.export has no export_model"
    try:
        from ..genome import Genome

        fn(Genome.from_dict(genome), path)
    except Exception as exc:  # noqa: BLE001 - the genome in best.json is the source of truth
        return f"best.py not written: {type(exc).__name__}: {exc}"
    return None


__all__ = ["RunDir", "SearchProgress", "SearchResult", "fit_seed", "parse_duration", "resume_arguments", "search",
           "seed_genome"]
