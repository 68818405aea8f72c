"""How well does the per-operator latency predictor rank and estimate real models?

For each of >= 30 diverse models (torchvision and timm: plain, residual, depthwise/inverted,
SE-gated, grouped, dense, multi-branch, transformer) at a modest resolution, this script

1. predicts latency from the per-operator table (measuring the operators it does not know yet),
2. measures the eager model with torch.utils.benchmark (median, IQR) in the same process, right
   after, with the same thread count, dtype, batch and device,

then prints Spearman's rho and the mean relative error |pred - meas| / meas (raw, and after one
global scale factor fitted as the median ratio meas/pred, which is what a budget would use).

    ./dev python benchmarks/bench_latency_predictor.py                  # CPU, 1 thread, batch 1, 128 px
    ./dev python benchmarks/bench_latency_predictor.py --device cuda --dtype float16 --threads 1
    ./dev python benchmarks/bench_latency_predictor.py --fresh --json-out /tmp/pred.json
    ./dev python benchmarks/bench_latency_predictor.py --clock thread   # shared CPU: thread CPU time

``--fresh`` uses an empty table in a temporary directory (so operator measurement time is part of
the run); otherwise the table in the user cache (~/.cache/zenfx/latency) is used and extended.
CPU timings on a shared machine are noisy: the IQR column says how much.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

MODELS: list[tuple[str, dict]] = [
    # torchvision
    ("torchvision:alexnet", {}),
    ("torchvision:vgg11", {}),
    ("torchvision:squeezenet1_0", {}),
    ("torchvision:squeezenet1_1", {}),
    ("torchvision:resnet18", {}),
    ("torchvision:resnet34", {}),
    ("torchvision:resnet50", {}),
    ("torchvision:resnet101", {}),
    ("torchvision:wide_resnet50_2", {}),
    ("torchvision:resnext50_32x4d", {}),
    ("torchvision:densenet121", {}),
    ("torchvision:googlenet", {"aux_logits": False, "init_weights": False}),
    ("torchvision:mobilenet_v2", {}),
    ("torchvision:mobilenet_v3_small", {}),
    ("torchvision:mobilenet_v3_large", {}),
    ("torchvision:mnasnet0_5", {}),
    ("torchvision:mnasnet1_0", {}),
    ("torchvision:shufflenet_v2_x0_5", {}),
    ("torchvision:shufflenet_v2_x1_0", {}),
    ("torchvision:efficientnet_b0", {}),
    ("torchvision:efficientnet_b2", {}),
    ("torchvision:efficientnet_v2_s", {}),
    ("torchvision:regnet_x_400mf", {}),
    ("torchvision:regnet_y_400mf", {}),
    ("torchvision:regnet_y_1_6gf", {}),
    ("torchvision:convnext_tiny", {}),
    ("torchvision:vit_b_16", {"image_size": 128}),
    ("torchvision:swin_t", {}),
    # timm
    ("timm:resnet26d", {}),
    ("timm:mixnet_s", {}),
    ("timm:ghostnet_100", {}),
    ("timm:ese_vovnet19b_dw", {}),
    ("timm:dla34", {}),
    ("timm:deit_tiny_patch16_224", {"img_size": 128}),
    ("timm:repvgg_a0", {}),
    ("timm:hrnet_w18_small", {}),
    # family members of models above, as a search produces them: most of their operators are
    # already in the table, measured in *another* model's graph (the "borrowed" column)
    ("torchvision:vgg13", {}),
    ("torchvision:resnet152", {}),
    ("torchvision:wide_resnet101_2", {}),
    ("torchvision:densenet169", {}),
    ("torchvision:efficientnet_b1", {}),
    ("timm:resnet50d", {}),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timed runs per model")
    ap.add_argument("--op-min-run-time", type=float, default=0.02, help="seconds of timed runs per operator")
    ap.add_argument("--clock", default="wall", choices=["wall", "thread"],
                    help="thread: time the calling thread's CPU time (CPU, 1 thread) to leave out time-slicing "
                         "by other jobs on a shared machine")
    ap.add_argument("--method", default="context", choices=["context", "isolated"],
                    help="how missing operators are timed: in the graph's context (default) or alone")
    ap.add_argument("--fresh", action="store_true", help="start from an empty operator table")
    ap.add_argument("--limit", type=int, default=0, help="only the first N models (smoke runs)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)

    warnings.simplefilter("ignore")
    if args.fresh:
        os.environ["ZENFX_CACHE_DIR"] = tempfile.mkdtemp(prefix="zenfx-bench-")
    from scipy.stats import pearsonr, spearmanr

    from zenfx import load_and_trace
    from zenfx.cost.flops import count_macs
    from zenfx.cost.latency import device_name, measure_latency
    from zenfx.cost.predictor import LatencyTable, predict_latency
    from zenfx.devices import parse_device

    dev = parse_device(args.device)
    torch.set_num_threads(args.threads)
    table = LatencyTable.for_setting(dev, args.dtype, args.batch_size, args.threads, clock=args.clock,
                                      method=args.method)
    print(f"device {dev.type} ({device_name(dev)}), dtype {args.dtype}, batch {args.batch_size}, "
          f"threads {args.threads} (pinned), clock {args.clock}, method {args.method}, "
          f"resolution {args.resolution}, torch {torch.__version__}")
    print(f"operator table: {table.path} ({len(table)} entries at start)")
    size = (3, args.resolution, args.resolution)
    rows = []
    t_start = time.perf_counter()
    models = MODELS[: args.limit] if args.limit else MODELS
    print(f"{'model':34s} {'GMACs':>7s} {'ops':>5s} {'new':>4s} {'borrow':>6s} {'pred ms':>9s} {'meas ms':>9s} "
          f"{'IQR ms':>7s} {'rel err':>8s}")
    for spec, kwargs in models:
        # the transformers are built for the benchmark's resolution (they only run at their size)
        kwargs = {k: (args.resolution if k in ("image_size", "img_size") else v) for k, v in kwargs.items()}
        try:
            tm = load_and_trace(spec, kwargs, size, device=None, batch_size=args.batch_size)
        except Exception as exc:  # a model that does not trace is skipped, and said so
            print(f"{spec:34s} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            continue
        macs = count_macs(tm.loaded.module, size)
        known = set(table.entries)
        pred = predict_latency(tm.gm, size, args.batch_size, dev, args.dtype, args.threads, table=table,
                               min_run_time=args.op_min_run_time, clock=args.clock, method=args.method)
        # share of the prediction that comes from entries measured in *other* models' graphs
        borrowed = sum(nd.seconds for nd in pred.nodes if nd.key in known) / max(pred.total_s, 1e-12)
        meas = measure_latency(tm.loaded.module, size, args.batch_size, dev, args.dtype, args.threads,
                               warmup=5, min_run_time=args.min_run_time, clock=args.clock)
        rel = (pred.total_s - meas.median_s) / meas.median_s
        rows.append({"model": spec, "gmacs": macs / 1e9, "operators": len(pred.nodes), "new_ops": pred.measured,
                     "predicted_ms": pred.total_s * 1e3, "measured_ms": meas.median_s * 1e3,
                     "measured_iqr_ms": meas.iqr_s * 1e3, "rel_err": rel, "borrowed": borrowed})
        print(f"{spec:34s} {macs / 1e9:7.3f} {len(pred.nodes):5d} {pred.measured:4d} {borrowed * 100:5.0f}% "
              f"{pred.total_s * 1e3:9.3f} "
              f"{meas.median_s * 1e3:9.3f} {meas.iqr_s * 1e3:7.3f} {rel * 100:+7.1f}%", flush=True)
        del tm
    wall = time.perf_counter() - t_start
    if len(rows) < 3:
        print("too few models for statistics")
        return 0 if args.limit else 1  # a smoke run (--limit 1) is not a failure
    pred_v = [r["predicted_ms"] for r in rows]
    meas_v = [r["measured_ms"] for r in rows]
    macs_v = [r["gmacs"] for r in rows]
    rho = float(spearmanr(pred_v, meas_v).statistic)
    rho_macs = float(spearmanr(macs_v, meas_v).statistic)
    r_log = float(pearsonr([math.log(v) for v in pred_v], [math.log(v) for v in meas_v]).statistic)
    mre = statistics.fmean(abs(p - m) / m for p, m in zip(pred_v, meas_v, strict=True))
    scale = statistics.median(m / p for p, m in zip(pred_v, meas_v, strict=True))
    mre_scaled = statistics.fmean(abs(scale * p - m) / m for p, m in zip(pred_v, meas_v, strict=True))
    noise = statistics.median(r["measured_iqr_ms"] / r["measured_ms"] for r in rows)
    # Generalisation: models predicted mostly (>= 50% of predicted time) from entries that other
    # models' graphs measured. Their own new operators were still timed in their own graph.
    held = [r for r in rows if r["borrowed"] >= 0.5]
    held_mre = statistics.fmean(abs(r["rel_err"]) for r in held) if held else float("nan")
    summary = {
        "models": len(rows), "spearman_rho": rho, "spearman_rho_macs_baseline": rho_macs,
        "pearson_r_log": r_log, "mean_relative_error": mre, "global_scale": scale,
        "mean_relative_error_after_scale": mre_scaled, "median_relative_iqr": noise,
        "borrowed_models": [r["model"] for r in held], "borrowed_mean_relative_error": held_mre,
        "method": args.method,
        "wall_s": wall, "table_entries": len(table), "device": dev.type, "device_name": device_name(dev),
        "dtype": args.dtype, "clock": args.clock, "batch_size": args.batch_size, "threads": args.threads,
        "resolution": args.resolution,
    }
    print()
    print(f"models {len(rows)} | Spearman rho {rho:.3f} (MACs alone: {rho_macs:.3f}) | Pearson r(log) {r_log:.3f}")
    print(f"mean relative error {mre * 100:.1f}% | after one global scale x{scale:.3f}: {mre_scaled * 100:.1f}%")
    print(f"models predicted >= 50% from other models' entries: {len(held)}, their mean relative error "
          f"{held_mre * 100:.1f}%")
    print(f"measurement noise: median IQR/median {noise * 100:.1f}% | wall {wall:.0f} s | table {len(table)} entries")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"summary": summary, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
