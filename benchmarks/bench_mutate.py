"""Overhead of one evolution step's bookkeeping next to the work it gates.

Per candidate: ``mutate`` (one random edit of the parent, drawn from the space of the parent as it
is), ``build`` (replay the genome on a fresh CPU copy of the seed, with family init) and the budget
check (parameter count, and MACs by formula over the topology: ``space.estimate_macs``), against
the candidate's two forward passes at batch 64 (what a Zen-Score repeat runs: x and x + eps).

The seed's analysis (probe included) is done before timing: it is cached per seed on disk. Depth
edits with a new history re-analyse the edited model (in memory, once per history) and that cost
IS in the timings. The walk is an evolution-like chain: each child becomes the next parent.

    ./dev python benchmarks/bench_mutate.py                 # resnet50 @224 and CIFAR ResNet-20 @32
    ./dev python benchmarks/bench_mutate.py --candidates 20 --models cifar
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import zenfx
from zenfx.genome import Genome, build_with_topology
from zenfx.space import estimate_macs

MODELS = {"resnet50": ("torchvision:resnet50", 224, 0.02), "cifar": ("zoo:cifar_resnet20", 32, 0.10)}
DEFAULT_CANDIDATES = {"resnet50": 4, "cifar": 12}


def step(parent: Genome, rng: random.Random, batch: int) -> tuple[Genome, dict[str, float]]:
    t0 = time.perf_counter()
    child = zenfx.mutate(parent, rng, edits=1)
    t1 = time.perf_counter()
    model, topo = build_with_topology(child)
    t2 = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    macs = estimate_macs(model, topo)
    t3 = time.perf_counter()
    x = torch.randn(batch, *child.input_size)
    model.train()
    with torch.no_grad():
        model(x)
        model(x + 0.01 * torch.randn_like(x))
    t4 = time.perf_counter()
    assert params > 0 and macs > 0
    return child, {"mutate": t1 - t0, "build": t2 - t1, "budget": t3 - t2, "forward2": t4 - t3,
                   "depth": float(child.edits[-1].kind == "depth")}


def run(name: str, candidates: int, batch: int, seed: int) -> dict[str, float]:
    spec, res, goal = MODELS[name]
    g0 = Genome(spec, {}, (3, res, res))
    t = time.perf_counter()
    zenfx.space(g0)  # analysis + probe: once per seed (read from the disk cache when warm)
    seed_model, topo = build_with_topology(g0)
    assert estimate_macs(seed_model, topo) == zenfx.count_macs(seed_model, g0.input_size)
    warm = time.perf_counter() - t
    print(f"{name}: {spec} @{res}, batch {batch}, seed analysis + probe / warm-up {warm:.2f} s", flush=True)
    rng = random.Random(seed)
    rows = []
    parent = g0
    for i in range(candidates):
        parent, row = step(parent, rng, batch)
        rows.append(row)
        print(f"  candidate {i + 1}: {parent.edits[-1]}: mutate {row['mutate']:.4f} s, build {row['build']:.4f} s, "
              f"budget {row['budget']:.4f} s, two forwards {row['forward2']:.3f} s", flush=True)
    over = [r["mutate"] + r["build"] + r["budget"] for r in rows]
    ratios = [o / r["forward2"] for o, r in zip(over, rows, strict=True)]
    med = {k: statistics.median(r[k] for r in rows) for k in ("mutate", "build", "budget", "forward2")}
    print(f"  {candidates} candidates, {int(sum(r['depth'] for r in rows))} of them depth edits", flush=True)
    print("  median s: " + ", ".join(f"{k} {v:.4f}" for k, v in med.items()))
    mean_ratio = sum(over) / sum(r["forward2"] for r in rows)
    print(f"  overhead / two forwards: total {100 * mean_ratio:.2f}%  median {100 * statistics.median(ratios):.2f}%  "
          f"max {100 * max(ratios):.2f}%  (goal <= {100 * goal:.0f}%)")
    return {"ratio": mean_ratio, "goal": goal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,cifar", help="comma-separated: " + ",".join(MODELS))
    ap.add_argument("--candidates", type=int, default=None, help="per model (default: resnet50 4, cifar 12)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    for name in args.models.split(","):
        name = name.strip()
        run(name, args.candidates or DEFAULT_CANDIDATES[name], args.batch, args.seed)


if __name__ == "__main__":
    main()
