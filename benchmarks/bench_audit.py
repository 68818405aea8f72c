"""Audit throughput: models per second of ``zenfx audit`` over a fixed list, measured in one run.

    ./dev python benchmarks/bench_audit.py                  # in-process (jobs=0): conversion cost only
    ./dev python benchmarks/bench_audit.py --jobs 2         # the worker pool, as `zenfx audit -j 2` runs
    ./dev python benchmarks/bench_audit.py --json out.json  # machine-readable, to track over time

The list mixes families the passes treat differently (plain, residual, SE/MBConv, concat, attention,
BatchNormAct). Models are built on the meta device, as the audit does. Per-model load / trace /
convert times are not split here: this measures what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

MODELS = [
    "torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v3_large", "torchvision:efficientnet_b0",
    "torchvision:densenet121", "torchvision:vgg16_bn", "torchvision:regnet_y_400mf", "torchvision:convnext_tiny",
    "torchvision:vit_b_16", "torchvision:swin_t",
    "timm:resnet50", "timm:efficientnet_b0", "timm:mobilenetv3_large_100", "timm:resnest50d", "timm:cspresnet50",
    "timm:coatnet_0_rw_224", "timm:ghostnet_100", "timm:vit_small_patch16_224", "timm:regnety_016", "timm:dla34",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=0, help="0: in-process; N: N worker processes (default 0)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N models of the fixed list")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    from zenfx.audit import audit_models

    models = MODELS[: args.limit] if args.limit else MODELS
    # warm-up: imports and registries, so the timed run measures the audit, not Python start-up
    audit_models(["torchvision:resnet18"], jobs=0)
    t0 = time.perf_counter()
    summary = audit_models(models, jobs=args.jobs, timeout=args.timeout)
    wall = time.perf_counter() - t0
    per_model = sorted(((r["name"], float(r["seconds"])) for r in summary.rows), key=lambda x: -x[1])
    result = {
        "benchmark": "audit_throughput",
        "models": len(summary.rows),
        "jobs": args.jobs,
        "wall_seconds": round(wall, 2),
        "models_per_second": round(len(summary.rows) / wall, 3),
        "by_verdict": summary.by_verdict,
        "slowest": per_model[:5],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(f"audit throughput: {result['models']} models in {wall:.1f} s = {result['models_per_second']:.3f} models/s "
          f"(jobs={args.jobs}, load average {result['load_average'][0] if result['load_average'] else '?':.2f})")
    print("verdicts:", ", ".join(f"{k} {v}" for k, v in summary.by_verdict.items()))
    print("slowest:", ", ".join(f"{n} {s:.1f}s" for n, s in result["slowest"]))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
