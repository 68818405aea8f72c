"""Executor throughput and overhead: Ray with 2 CPUs against the local pool with 2 workers, on the
same small workloads, measured in one run (ratios, so a loaded machine hurts both sides alike).

    ./dev python benchmarks/bench_executor.py                    # all three measurements
    ./dev python benchmarks/bench_executor.py --skip-search      # overhead + NB201 scoring only
    ./dev python benchmarks/bench_executor.py --json out.json    # machine-readable

1. per-task overhead: a no-op task's round trip on one warm worker (driver -> worker -> driver),
   and the no-op throughput of two workers, per backend;
2. NB201 scoring: a batch of NAS-Bench-201 cells scored with params/synflow/snip/zen (the
   ``zenfx bench proxies`` task), two workers, wall time per backend, warm workers;
3. a small search: ``zenfx.search.search`` on zoo:cifar_resnet_basic at 32x32 (the test suite's
   settings), two workers, wall time per backend including the workers' start.

Goal (issue 12): Ray at least 0.9x the local pool's throughput. Ray starts once, before its first
measurement (its start-up is reported apart); the local runs come first, before Ray exists, so the
local pool forks as it does in a plain run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

CELLS = [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"
         for a, b, c, d, e, f in [("nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                   "avg_pool_3x3"),
                                  ("nor_conv_1x1", "none", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                                   "nor_conv_1x1"),
                                  ("avg_pool_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none",
                                   "nor_conv_3x3"),
                                  ("skip_connect", "nor_conv_1x1", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3",
                                   "skip_connect")]]
SEARCH = dict(resolution=32, batch_size=8, population=8, round_size=4, budget_params="200k", seed=3,
              num_classes=10, plots=False, export=False)


def overhead(backend: str, n: int) -> dict[str, float]:
    from zenfx.executor import make_executor
    from zenfx.executor.probe import noop

    out: dict[str, float] = {}
    with make_executor(backend, 1) as ex:
        ex.run(noop, [0, 1])  # warm: worker started, imports done
        t = time.perf_counter()
        for i in range(n):  # one task at a time: the pure round trip
            ex.run(noop, [i])
        out["round_trip_ms"] = (time.perf_counter() - t) / n * 1e3
    with make_executor(backend, 2) as ex:
        ex.run(noop, list(range(4)))
        t = time.perf_counter()
        ex.run(noop, list(range(n)))
        out["noop_tasks_per_s_2_workers"] = n / (time.perf_counter() - t)
    return out


def nb201(backend: str, archs: int) -> dict[str, float]:
    from zenfx.bench import Arch, BenchConfig, _score_task, _worker_state
    from zenfx.executor import make_executor

    cfg = BenchConfig("nb201", "cifar10", sample=archs, seed=0, proxies=("params", "synflow", "snip", "zen"),
                      batch_size=16, resolution=32)
    tasks = [(Arch(i, CELLS[i % len(CELLS)], 0.0), cfg.proxies) for i in range(archs)]
    with make_executor(backend, 2, init=_worker_state, init_arg=cfg) as ex:
        ex.run(_score_task, tasks[:2])  # warm both... at least one worker, and the imports
        t = time.perf_counter()
        outs = ex.run(_score_task, tasks)
        wall = time.perf_counter() - t
    assert all(o.ok for o in outs), [o.error for o in outs if not o.ok]
    return {"archs": archs, "wall_s": wall, "archs_per_s": archs / wall,
            "scores": {o.index: o.value["scores"] for o in outs}}


def search(backend: str, candidates: int, out: str) -> dict[str, float]:
    from zenfx.search import search as run_search

    t = time.perf_counter()
    run_search("zoo:cifar_resnet_basic", out=out, candidates=candidates, workers=2, backend=backend, **SEARCH)
    wall = time.perf_counter() - t
    return {"candidates": candidates, "wall_s": wall, "candidates_per_s": candidates / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks per overhead measurement (default 200)")
    ap.add_argument("--archs", type=int, default=16, help="NB201 cells to score (default 16)")
    ap.add_argument("--candidates", type=int, default=24, help="search candidates (default 24)")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    res: dict[str, dict] = {"local": {}, "ray": {}}
    tmp = tempfile.mkdtemp(prefix="bench_executor_")
    print(f"# bench_executor  python {platform.python_version()}  cpus {os.cpu_count()}  "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    res["local"]["overhead"] = overhead("local", args.tasks)
    res["local"]["nb201"] = nb201("local", args.archs)
    if not args.skip_search:
        res["local"]["search"] = search("local", args.candidates, os.path.join(tmp, "local"))

    import ray

    from zenfx.executor.ray_backend import quiet_driver

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_driver()
    res["ray"]["start_s"] = time.perf_counter() - t
    res["ray"]["overhead"] = overhead("ray", args.tasks)
    res["ray"]["nb201"] = nb201("ray", args.archs)
    if not args.skip_search:
        res["ray"]["search"] = search("ray", args.candidates, os.path.join(tmp, "ray"))
    ray.shutdown()

    same_scores = res["ray"]["nb201"].pop("scores") == res["local"]["nb201"].pop("scores")
    lo, ra = res["local"], res["ray"]
    print(f"ray start-up                    {ra['start_s']:8.2f} s")
    for k in ("round_trip_ms", "noop_tasks_per_s_2_workers"):
        print(f"{k:32s} local {lo['overhead'][k]:9.2f}   ray {ra['overhead'][k]:9.2f}")
    ratio_nb = ra["nb201"]["archs_per_s"] / lo["nb201"]["archs_per_s"]
    print(f"NB201 scoring, {args.archs} cells          local {lo['nb201']['wall_s']:7.2f} s   "
          f"ray {ra['nb201']['wall_s']:7.2f} s   ray/local throughput {ratio_nb:.2f}x  (identical scores: "
          f"{same_scores})")
    res["ratios"] = {"nb201_ray_over_local": ratio_nb}
    if not args.skip_search:
        ratio_s = ra["search"]["candidates_per_s"] / lo["search"]["candidates_per_s"]
        same_hist = (open(os.path.join(tmp, "local", "history.jsonl"), "rb").read()
                     == open(os.path.join(tmp, "ray", "history.jsonl"), "rb").read())
        print(f"search, {args.candidates} candidates            local {lo['search']['wall_s']:7.2f} s   "
              f"ray {ra['search']['wall_s']:7.2f} s   ray/local throughput {ratio_s:.2f}x  (identical history: "
              f"{same_hist})")
        res["ratios"]["search_ray_over_local"] = ratio_s
        res["identical_history"] = same_hist
    res["identical_scores"] = same_scores
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
