"""How far off is the latency predictor on the networks a latency-budgeted search returns, before and
after its calibration (issue 22 item 7b)?

Searches start from a seed shrunk uniformly to fit the budget and mutate it, so the networks they
return are small and often overhead-bound (a shrunk RegNet at 224 px, a CIFAR ResNet at 32 px). For
each of six search seeds this script builds, through zenfx's own genome API, the seed shrunk to
several widths (plus one at minimum block-run depths where that adds edits: in the committed
runs it added none) and randomly mutated children
of each, at the resolution such a search uses (224 for ImageNet seeds, 32 for CIFAR ones), batch 1,
1 thread. For every network it records

* the raw prediction (sum of in-context operator entries) and the calibrated one (plus the table's
  per-op / per-module-call overhead, probed once for the table: ``zenfx.cost.calibration``),
* the measured median with ``zenfx.cost.latency.measure_latency`` (1 thread, same process, right after),

then prints mean |error|, median signed error, worst case and Spearman's rho for both, and, as the
alternative the calibration was chosen against, the same overhead model fitted by least squares on
the measured networks themselves (leave-one-out, so each network is predicted by a fit that never
saw it).

    ./dev python benchmarks/bench_latency_calibration.py                   # wall clock, fresh table
    ./dev python benchmarks/bench_latency_calibration.py --clock thread    # shared CPU: thread CPU time
    ./dev python benchmarks/bench_latency_calibration.py --limit 4 --min-run-time 0.1   # smoke run

The operator table and its calibration are fresh (a temporary directory) unless ``--cached``;
results go to benchmarks/results/latency_calibration_cpu_<clock>_clock.txt (``--out``) and,
with ``--json-out``, to a JSON file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import torch

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)
# (seed spec, input size, width factors): the factors reach the budgets a search on this seed is
# given in practice (docs/search.md's examples: a few ms at 1 thread)
SEEDS: list[tuple[str, tuple[int, int, int], tuple[float, ...]]] = [
    ("timm:regnetx_004", IMAGENET, (0.0625, 0.125, 0.25)),
    ("torchvision:mobilenet_v3_small", IMAGENET, (0.25, 0.5, 1.0)),
    ("torchvision:resnet18", IMAGENET, (0.125, 0.25, 0.5)),
    ("torchvision:efficientnet_b0", IMAGENET, (0.125, 0.25, 0.5)),
    ("zoo:cifar_resnet_bottleneck", CIFAR, (0.5, 1.0)),
    ("zoo:cifar_resnet20", CIFAR, (0.5, 1.0)),
]
MUTANTS = 1  # randomly mutated children per shrunk network
EDITS = 4  # random edits per child (what a few generations of evolution add)


def candidates(seed: str, size: tuple[int, ...], factors: tuple[float, ...],
               rng: random.Random) -> list[tuple[str, Any]]:
    """(label, genome) pairs: the seed shrunk to each factor, the smallest with minimum depths too,
    and ``MUTANTS`` random children of each."""
    from zenfx.genome import Genome, mutate, shrink

    base = Genome(seed=seed, input_size=size)
    shrunk = [(f"x{f:g}", shrink(base, f)) for f in factors]
    tiny = shrink(base, factors[0], depth=True)
    if len(tiny.edits) > len(shrunk[0][1].edits):
        shrunk.insert(0, (f"x{factors[0]:g} min-depth", tiny))
    out: list[tuple[str, Any]] = []
    for label, g in shrunk:
        out.append((label, g))
        for i in range(MUTANTS):
            out.append((f"{label} mut{i + 1}", mutate(g, rng, edits=EDITS)))
    return out


def measure_one(genome: Any, table: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Predict (raw and calibrated) and measure one network at batch 1 on the CPU."""
    from zenfx.cost.latency import measure_latency
    from zenfx.cost.predictor import predict_latency
    from zenfx.genome import build

    model = build(genome)
    size = tuple(genome.input_size)
    pred = predict_latency(model, size, 1, "cpu", "float32", args.threads, table=table, clock=args.clock)
    meas = measure_latency(model, size, 1, "cpu", "float32", args.threads, warmup=5,
                           min_run_time=args.min_run_time, clock=args.clock)
    params = sum(p.numel() for p in model.parameters())
    assert pred.counts is not None
    return {"params": params, "ops": pred.counts.ops, "calls": pred.counts.module_calls,
            "raw_ms": pred.raw_s * 1e3, "calibrated_ms": pred.total_s * 1e3,
            "measured_ms": meas.median_s * 1e3, "iqr_ms": meas.iqr_s * 1e3, "new_ops": pred.measured}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho (Pearson on ranks, ties averaged): no scipy needed."""
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else float("nan")


def error_stats(pred: list[float], meas: list[float]) -> dict[str, float]:
    """Mean |relative error|, median signed relative error, worst |relative error| (signed), rho."""
    rel = [(p - m) / m for p, m in zip(pred, meas, strict=True)]
    worst = max(rel, key=abs)
    return {"mean_abs": statistics.fmean(abs(r) for r in rel), "median_signed": statistics.median(rel),
            "worst": worst, "within_10pct": sum(abs(r) <= 0.10 for r in rel) / len(rel),
            "under_5pct": sum(r < -0.05 for r in rel) / len(rel), "spearman": spearman(pred, meas)}


def _lstsq2(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Least squares, through the origin, of gap = a*ops + b*calls, each coefficient clamped >= 0."""
    sxx = sum(r["ops"] ** 2 for r in rows)
    syy = sum(r["calls"] ** 2 for r in rows)
    sxy = sum(r["ops"] * r["calls"] for r in rows)
    gx = sum(r["ops"] * (r["measured_ms"] - r["raw_ms"]) for r in rows)
    gy = sum(r["calls"] * (r["measured_ms"] - r["raw_ms"]) for r in rows)
    det = sxx * syy - sxy * sxy
    a, b = ((gx * syy - gy * sxy) / det, (gy * sxx - gx * sxy) / det) if det else (-1.0, -1.0)
    if a < 0 or b < 0:  # one coefficient only: the one that explains more of the gap
        a, b = (max(0.0, gx / sxx), 0.0) if gx / sxx * gx > gy / syy * gy else (0.0, max(0.0, gy / syy))
    return a, b


def fitted_loo(rows: list[dict[str, Any]]) -> tuple[list[float], tuple[float, float]]:
    """Each network predicted by the overhead model fitted on all the others (leave-one-out), and the
    coefficients (ms per op, ms per module call) fitted on all of them."""
    out = []
    for i, r in enumerate(rows):
        a, b = _lstsq2(rows[:i] + rows[i + 1:])
        out.append(r["raw_ms"] + a * r["ops"] + b * r["calls"])
    return out, _lstsq2(rows)


def summarise(rows: list[dict[str, Any]], cal: Any) -> tuple[str, dict[str, Any]]:
    """The before/after table (text) and the summary (JSON)."""
    meas = [r["measured_ms"] for r in rows]
    loo, (a, b) = fitted_loo(rows)
    stats = {"raw": error_stats([r["raw_ms"] for r in rows], meas),
             "calibrated (probe)": error_stats([r["calibrated_ms"] for r in rows], meas),
             "fitted on these networks (LOO)": error_stats(loo, meas)}
    lines = [f"{'prediction':32s} {'mean |err|':>10s} {'median err':>10s} {'worst':>8s} {'<=10%':>6s} "
             f"{'<-5%':>5s} {'rho':>6s}"]
    for name, s in stats.items():
        lines.append(f"{name:32s} {s['mean_abs'] * 100:9.1f}% {s['median_signed'] * 100:+9.1f}% "
                     f"{s['worst'] * 100:+7.1f}% {s['within_10pct'] * 100:5.0f}% {s['under_5pct'] * 100:4.0f}% "
                     f"{s['spearman']:6.3f}")
    lines.append(f"probe calibration: {cal.per_op_s * 1e6:.2f} us per op, {cal.per_call_s * 1e6:.2f} us per module "
                 f"call | fit on these networks: {a * 1e3:.2f} us per op, {b * 1e3:.2f} us per module call")
    noise = statistics.median(r["iqr_ms"] / r["measured_ms"] for r in rows)
    lines.append(f"measurement noise: median IQR/median {noise * 100:.1f}%")
    summary = {"networks": len(rows), "stats": stats, "probe": cal.to_dict(),
               "fit_us_per_op": a * 1e3, "fit_us_per_call": b * 1e3, "median_relative_iqr": noise}
    return "\n".join(lines), summary


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Any]:
    """Build, predict and measure every network; prints one row each as it goes."""
    from zenfx.cost.predictor import LatencyTable

    table = LatencyTable.for_setting("cpu", "float32", 1, args.threads, clock=args.clock)
    t0 = time.perf_counter()
    cal = table.ensure_calibration(torch.device("cpu"), torch.float32)
    print(f"operator table: {table.path} ({len(table)} entries); calibration ready in "
          f"{time.perf_counter() - t0:.1f} s: {cal.per_op_s * 1e6:.2f} us/op, {cal.per_call_s * 1e6:.2f} us/call")
    print(f"{'network':44s} {'params':>8s} {'ops':>4s} {'calls':>5s} {'raw ms':>8s} {'cal ms':>8s} "
          f"{'meas ms':>8s} {'IQR':>6s} {'raw err':>8s} {'cal err':>8s}")
    rng = random.Random(args.seed)
    nets: list[tuple[str, Any]] = []
    for seed, size, factors in SEEDS:
        if args.limit and len(nets) >= args.limit:
            break  # a smoke run builds only the seeds it needs
        nets += [(f"{seed} {label}", g) for label, g in candidates(seed, size, factors, rng)]
    nets = nets[: args.limit] if args.limit else nets
    rows: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        if rnd > 1:
            print(f"round {rnd}: every operator from the table round 1 filled (as in a search once the table exists)")
        for name, genome in nets:
            row = {"network": name, "round": rnd, "resolution": genome.input_size[-1],
                   **measure_one(genome, table, args)}
            rows.append(row)
            m = row["measured_ms"]
            print(f"{row['network']:44s} {row['params'] / 1e3:7.0f}k {row['ops']:4d} {row['calls']:5d} "
                  f"{row['raw_ms']:8.3f} {row['calibrated_ms']:8.3f} {m:8.3f} {row['iqr_ms']:6.3f} "
                  f"{(row['raw_ms'] - m) / m * 100:+7.1f}% {(row['calibrated_ms'] - m) / m * 100:+7.1f}%", flush=True)
    return rows, cal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clock", default="wall", choices=["wall", "thread"],
                    help="thread: the calling thread's CPU time, leaving out time other jobs took (shared CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed runs per network")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    ap.add_argument("--limit", type=int, default=0, help="only the first N networks (smoke runs)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="predict and measure every network this many times; rounds after the first predict "
                         "from the table the first filled, measured earlier (a search's situation)")
    ap.add_argument("--cached", action="store_true", help="use (and extend) the user's cached table")
    ap.add_argument("--out", default=None, help="results text file (default benchmarks/results/...)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if not args.cached:
        os.environ["ZENFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="zenfx-calib-")
    torch.set_num_threads(args.threads)
    buf = io.StringIO()
    with redirect_stdout(_Tee(sys.stdout, buf)):
        print(f"cpu, float32, batch 1, threads {args.threads} (pinned), clock {args.clock}, "
              f"torch {torch.__version__}, mutation seed {args.seed}")
        t0 = time.perf_counter()
        rows, cal = run(args)
        if len(rows) < 3:
            print("too few networks for statistics")
            return 0
        print(f"\nnetworks {len(rows) // args.rounds} x {args.rounds} round(s) | wall {time.perf_counter() - t0:.0f} s")
        summary = {}
        for rnd in range(1, args.rounds + 1):
            text, summary[f"round{rnd}"] = summarise([r for r in rows if r["round"] == rnd], cal)
            print(f"round {rnd}{' (operators measured in this network)' if rnd == 1 else ' (table lookups)'}:")
            print(text)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / \
        f"latency_calibration_cpu_{args.clock}_clock.txt"
    if not args.limit or args.out:
        out.write_text(buf.getvalue())
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    return 0


class _Tee(io.TextIOBase):
    """Prints to the terminal and keeps a copy for the results file."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


if __name__ == "__main__":
    sys.exit(main())
