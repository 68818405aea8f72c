"""FLOPs, parameters, activation memory and latency of a few networks, side by side.

    ./dev python examples/cost_report.py                      # resnet50, mobilenet_v3_large, a ZenNet; 224x224
    ZENFX_EXAMPLE_FAST=1 ./dev python examples/cost_report.py # small nets, short timing (the test)

One model in one command: ./dev zenfx report torchvision.models.resnet50 --latency
"""

from __future__ import annotations

import os

import torch

import zenfx

FAST = os.environ.get("ZENFX_EXAMPLE_FAST") == "1"

# Any spec zenfx accepts: torchvision / timm names, zoo entries, your own file.py:callable.
MODELS = (["zoo:cifar_resnet20", "zoo:zennet_cifar_05m", "examples/my_backbone.py:build"] if FAST else
          ["torchvision.models.resnet50", "torchvision.models.mobilenet_v3_large", "zoo:zennet_imagenet_400m"])


def main() -> None:
    torch.set_num_threads(1)  # latency is measured on one thread; the number is printed with it
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"{'model':34s} {'input':>9s} {'params':>9s} {'GMACs':>8s} {'GFLOPs':>8s} {'act. MB':>8s} {'latency':>10s}")
    for spec in MODELS:
        if spec.startswith("examples/"):
            spec = os.path.join(here, spec)  # a file spec is a path: make it work from any directory
        rep = zenfx.cost_report(
            spec,
            resolution=32 if FAST else 224,  # the input is batch x 3 x R x R
            batch_size=1,
            latency=True,  # measured with torch.utils.benchmark (median of several blocks)
            min_run_time=0.05 if FAST else 1.0,
            warmup=1 if FAST else 10,
        )
        # MACs are counted on meta tensors (no real compute); FLOPs = 2 x MACs by convention.
        mem = rep.memory.peak_bytes / 2**20 if rep.memory else float("nan")
        lat = f"{rep.latency.median_s * 1e3:8.2f}ms" if rep.latency else "-"
        print(f"{rep.model:34.34s} {'x'.join(map(str, rep.input_size[1:])):>9s} {rep.params.total / 1e6:8.2f}M "
              f"{rep.macs.total / 1e9:8.3f} {rep.macs.flops / 1e9:8.3f} {mem:8.1f} {lat:>10s}")
    print("latency: batch 1, float32, one CPU thread; activation memory: peak live bytes at batch 1")


if __name__ == "__main__":
    main()
