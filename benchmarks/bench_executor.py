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
   settings), two workers, wall time per backend including the workers' start, with Ray in two
   states: *private* (started by the run, as ``zenfx search --backend ray`` without an address
   does: its workers are still importing torch when the search begins) and *running* (a Ray whose
   idle workers have finished pre-importing, like a cluster ``ray start`` brought up earlier and a
   search joins with ``--ray-address auto``).

Goal (issue 12): Ray at least 0.9x the local pool's throughput. Every measurement runs in a fresh
process, local and ray alternating, ``--repeat`` times; the best wall time of each backend counts
(the least disturbed by other load on a shared machine). Ray is started the way zenfx starts it
(``zenfx.executor.ray_backend.start_ray``: idle workers pre-import torch, zenfx and the seed's
libraries); its start-up is measured apart and not in the workload times; a search's time does
include starting its actors (placed on Ray's idle workers; forked local workers inherit the
driver's state), which is part of what a user waits for.
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
    from zenfx.bench import Arch, BenchConfig, score_task, worker_state
    from zenfx.executor import make_executor

    cfg = BenchConfig("nb201", "cifar10", sample=archs, seed=0, proxies=("params", "synflow", "snip", "zen"),
                      batch_size=16, resolution=32)
    tasks = [(Arch(i, CELLS[i % len(CELLS)], 0.0), cfg.proxies) for i in range(archs)]
    with make_executor(backend, 2, init=worker_state, init_arg=cfg) as ex:
        ex.run(score_task, tasks[:2])  # warm both... at least one worker, and the imports
        t = time.perf_counter()
        outs = ex.run(score_task, tasks)
        wall = time.perf_counter() - t
    assert all(o.ok for o in outs), [o.error for o in outs if not o.ok]
    return {"archs": archs, "wall_s": wall, "archs_per_s": archs / wall,
            "scores": {str(o.index): o.value["scores"] for o in outs}}


def search(backend: str, candidates: int, out: str) -> dict[str, float]:
    from zenfx.search import search as run_search

    t = time.perf_counter()
    run_search("zoo:cifar_resnet_basic", out=out, candidates=candidates, workers=2, backend=backend, **SEARCH)
    wall = time.perf_counter() - t
    return {"candidates": candidates, "wall_s": wall, "candidates_per_s": candidates / wall, "out": out}


def ray_workers_cpu() -> float:
    """CPU seconds used so far by the raylet's Python worker processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float, bytes]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        procs[int(pid)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / tick, cmd)
    raylets = {p for p, (_, _, cmd) in procs.items() if b"raylet/raylet" in cmd}
    return sum(cpu for parent, cpu, _ in procs.values() if parent in raylets)


def wait_for_idle_workers(poll: float = 0.5, timeout: float = 120.0) -> float:
    """Block until Ray's idle workers stop using CPU (their pre-imports are done); seconds waited."""
    t, last = time.perf_counter(), -1.0
    while time.perf_counter() - t < timeout:
        time.sleep(poll)
        now = ray_workers_cpu()
        if now > 0 and now == last:
            break
        last = now
    return time.perf_counter() - t


def child(backend: str, what: str, n: int) -> dict:
    """One measurement in a fresh process: no state carries over between backends or repeats."""
    import torch

    torch.set_num_threads(1)
    res: dict = {"backend": backend, "what": what}
    if what.startswith("search"):
        # Both backends: what resolving the seed imports, which a search does before it starts Ray
        # (so Ray's workers can pre-import it too), kept out of both timings alike.
        import torchvision  # noqa: F401

        import zenfx.zoo.registry  # noqa: F401
    if backend == "ray":
        from zenfx.executor.ray_backend import start_ray
        from zenfx.search.run import worker_preload

        preload = worker_preload() if what.startswith("search") else []
        t = time.perf_counter()
        start_ray(2, preload=preload)
        res["ray_start_s"] = time.perf_counter() - t
        if what == "search_running":
            res["ray_warm_s"] = wait_for_idle_workers()
    if what == "overhead":
        res.update(overhead(backend, n))
    elif what == "nb201":
        res.update(nb201(backend, n))
    else:  # search, search_running
        res.update(search(backend, n, tempfile.mkdtemp(prefix=f"bench_executor_{backend}_")))
        out = res.pop("out")
        res["history"] = open(os.path.join(out, "history.jsonl")).read()
        times = [json.loads(line).get("t") for line in open(os.path.join(out, "timings.jsonl"))][1:]
        firsts = sorted({t for t in times if t})
        res["first_round_end_s"] = firsts[0] if firsts else None
    return res


def _run_child(backend: str, what: str, n: int) -> dict:
    import subprocess

    cmd = [sys.executable, __file__, "--child", backend, what, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks per overhead measurement (default 200)")
    ap.add_argument("--archs", type=int, default=16, help="NB201 cells to score (default 16)")
    ap.add_argument("--candidates", type=int, default=24, help="search candidates (default 24)")
    ap.add_argument("--repeat", type=int, default=2, help="alternating local/ray repeats; the best of each counts")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--only", choices=("overhead", "nb201", "search"), default=None, help="one measurement only")
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--child", nargs=3, metavar=("BACKEND", "WHAT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return 0

    print(f"# bench_executor  python {platform.python_version()}  cpus {os.cpu_count()}  "
          f"load {os.getloadavg()[0]:.1f}  repeats {args.repeat} (alternating local/ray, each in a fresh process)",
          flush=True)
    work = [("overhead", args.tasks), ("nb201", args.archs)] + ([] if args.skip_search else
                                                                [("search", args.candidates)])
    if args.only:
        work = [w for w in work if w[0] == args.only] or [("search", args.candidates)]
    runs: dict[str, dict[str, list[dict]]] = {w: {"local": [], "ray": []} for w, _ in work}
    if any(w == "search" for w, _ in work):
        runs["search_running"] = {"local": runs["search"]["local"], "ray": []}  # local has no such state
    for _ in range(args.repeat):
        for what, n in work:
            for backend in ("local", "ray"):
                runs[what][backend].append(_run_child(backend, what, n))
            if what == "search":
                runs["search_running"]["ray"].append(_run_child("ray", "search_running", n))
    summary: dict = {"load_at_start": os.getloadavg()[0], "repeat": args.repeat}
    summary["ray_start_s"] = min(r["ray_start_s"] for w in runs.values() for r in w["ray"])
    print(f"ray start-up (best)             {summary['ray_start_s']:8.2f} s")
    if "overhead" in runs:
        lo, ra = runs["overhead"]["local"], runs["overhead"]["ray"]
        summary["round_trip_ms"] = {"local": min(r["round_trip_ms"] for r in lo),
                                    "ray": min(r["round_trip_ms"] for r in ra)}
        summary["noop_tasks_per_s_2_workers"] = {"local": max(r["noop_tasks_per_s_2_workers"] for r in lo),
                                                 "ray": max(r["noop_tasks_per_s_2_workers"] for r in ra)}
        for k in ("round_trip_ms", "noop_tasks_per_s_2_workers"):
            print(f"{k:32s} local {summary[k]['local']:9.2f}   ray {summary[k]['ray']:9.2f}")
    if "search_running" in runs:
        summary["ray_warm_s"] = min(r["ray_warm_s"] for r in runs["search_running"]["ray"])
        print(f"ray workers' pre-imports done   {summary['ray_warm_s']:8.2f} s after start-up (the 'running' Ray)")
    for what, label, key in (("nb201", f"NB201 scoring, {args.archs} cells", "scores"),
                             ("search", f"search, {args.candidates} cand., private Ray", "history"),
                             ("search_running", f"search, {args.candidates} cand., running Ray", "history")):
        if what not in runs:
            continue
        best = {b: min(r["wall_s"] for r in runs[what][b]) for b in ("local", "ray")}
        same = len({json.dumps(r[key], sort_keys=True) for b in ("local", "ray") for r in runs[what][b]}) == 1
        ratio = best["local"] / best["ray"]
        walls = {b: [round(r["wall_s"], 2) for r in runs[what][b]] for b in ("local", "ray")}
        print(f"{label:32s} local {best['local']:7.2f} s   ray {best['ray']:7.2f} s   ray/local throughput "
              f"{ratio:.2f}x   identical {key}: {same}   (all walls {walls})")
        summary[what] = {"best_wall_s": best, "walls": walls, "ray_over_local": ratio, f"identical_{key}": same}
        if what.startswith("search"):
            first = {b: min(r["first_round_end_s"] or 0.0 for r in runs[what][b]) for b in ("local", "ray")}
            rest = {b: min(r["wall_s"] - (r["first_round_end_s"] or 0.0) for r in runs[what][b])
                    for b in ("local", "ray")}
            summary[what].update(first_round_end_s=first, after_first_round_s=rest)
            print(f"{'  first round ends at':32s} local {first['local']:7.2f} s   ray {first['ray']:7.2f} s   "
                  f"(workers' start: forked workers inherit the driver's state, actors start in Ray's workers)")
            print(f"{'  after the first round':32s} local {rest['local']:7.2f} s   ray {rest['ray']:7.2f} s   "
                  f"ray/local throughput {rest['local'] / rest['ray']:.2f}x")
    summary["load_at_end"] = os.getloadavg()[0]
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(summary, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
