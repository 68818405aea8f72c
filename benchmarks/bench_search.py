"""Search throughput: the share of time outside the proxy's own passes, and 2 workers against 1.

    ./dev python benchmarks/bench_search.py [--candidates 48] [--seed-model zoo:cifar_resnet_bottleneck]

Runs the same seeded search (CIFAR size: 32x32, batch 64, Zen, <= 1M params) with 1 and with 2
worker processes (one torch thread each) and prints, measured in this one run:

* ``outside proxy``: 1 - (proxy seconds) / (wall seconds x workers) over the search rounds, where
  proxy seconds are what ``zenfx.score`` reports for the proxy (materialising the candidate's copy,
  the Gaussian init and the two forward passes); everything else -- proposing, dedup, build, trace,
  VCNN conversion, budget figures, executor traffic, idle workers at a round's end -- is outside.
  Goal at CIFAR size with 2 workers: at most 10%.
* ``speed-up``: candidates per second with 2 workers over 1 worker. Goal: at least 1.7x.
* the same share in CPU seconds (``time.process_time`` in the workers around the proxy and
  around each candidate, and in the main process around each round), which a machine shared
  with other jobs distorts far less than wall time.

The two histories are checked to be identical (same seed, same round size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def run(workers: int, args: argparse.Namespace, root: Path) -> dict:
    import zenfx
    from zenfx.genome import forget_genomes

    out = root / f"w{workers}"
    if out.exists():
        shutil.rmtree(out)
    forget_genomes()  # the second run must not find the first one's genomes already analysed
    t0 = time.perf_counter()
    res = zenfx.search(args.seed_model, out=out, resolution=32, batch_size=64, budget_params="1M",
                       num_classes=10, population=args.population, round_size=args.round, candidates=args.candidates,
                       seed=args.seed, workers=workers, plots=False, export=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "timings.jsonl").read_text().splitlines()][1:]
    rows = [r for r in rows if r["id"] != 0]
    proxy = sum(r.get("proxy") or 0.0 for r in rows)
    proxy_cpu = sum(r.get("proxy_cpu") or 0.0 for r in rows)
    worker_s = sum(r.get("seconds") or 0.0 for r in rows)
    cpu = sum(r.get("cpu") or 0.0 for r in rows)
    stages: dict[str, float] = {}
    for r in rows:
        for k, v in (r.get("stages") or {}).items():
            stages[k] = stages.get(k, 0.0) + v
    return {"workers": workers, "wall_s": wall, "search_s": res.elapsed_s, "proxy_s": proxy, "worker_s": worker_s,
            "proxy_cpu_s": proxy_cpu, "main_cpu_s": res.main_cpu_s,
            "worker_cpu_s": cpu, "stages": stages, "proposed": res.counters["proposed"],
            "scored": res.counters["scored"], "best": res.best_score, "history": (out / "history.jsonl").read_bytes()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-model", default="zoo:cifar_resnet_bottleneck")
    ap.add_argument("--candidates", type=int, default=48)
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--round", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the run folders here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="zenfx-bench-search-"))
    results = [run(w, args, root) for w in (1, 2)]
    for r in results:
        outside = 1 - r["proxy_s"] / (r["search_s"] * r["workers"])
        cpu_total = r["worker_cpu_s"] + r["main_cpu_s"]
        outside_cpu = 1 - r["proxy_cpu_s"] / cpu_total if cpu_total else float("nan")
        print(f"workers {r['workers']}: {r['proposed']} candidates ({r['scored']} scored) in {r['search_s']:.1f} s "
              f"search time ({r['wall_s']:.1f} s wall incl. seed and start-up); proxy {r['proxy_s']:.1f} s wall, "
              f"worker busy {r['worker_s']:.1f} s; CPU: workers {r['worker_cpu_s']:.1f} s (proxy "
              f"{r['proxy_cpu_s']:.1f} s), main {r['main_cpu_s']:.1f} s; outside proxy: {100 * outside:.1f}% of "
              f"wall x workers, {100 * outside_cpu:.1f}% of CPU; best {r['best']:.2f}")
        total = sum(r["stages"].values()) or 1.0
        print("   worker time by stage: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in
                                                     sorted(r["stages"].items(), key=lambda kv: -kv[1])))
    one, two = results
    speed = (two["proposed"] / two["search_s"]) / (one["proposed"] / one["search_s"])
    print(f"speed-up 2 workers vs 1: {speed:.2f}x (goal >= 1.7x); identical history: "
          f"{one['history'] == two['history']}")


if __name__ == "__main__":
    main()
