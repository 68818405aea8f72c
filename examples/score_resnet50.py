"""Score torchvision's ResNet-50 with the Zen-Score and read the result.

    ./dev python examples/score_resnet50.py            # 224x224, batch 16, 4 repeats
    ZENFX_EXAMPLE_FAST=1 ./dev python examples/score_resnet50.py   # 64x64, one small repeat (the test)

The same in one command: ./dev zenfx score torchvision.models.resnet50
"""

from __future__ import annotations

import os

import torch

import zenfx

FAST = os.environ.get("ZENFX_EXAMPLE_FAST") == "1"


def main() -> None:
    torch.set_num_threads(1)  # deterministic and polite on a shared machine
    # A spec string is enough: zenfx builds the model (no weights are downloaded), traces it with
    # torch.fx, rewrites it into vanilla-CNN form (residuals, SE and head removed) and scores that.
    result = zenfx.score("torchvision.models.resnet50", proxy="zen",
                         resolution=64 if FAST else 224,  # the input is 3 x R x R Gaussian noise
                         batch_size=4 if FAST else 16, repeat=1 if FAST else 4, seed=0)

    zen = result["zen"]  # one ProxyScore per proxy asked for
    print(f"model       : {result.model} at {result.input_size}")
    print(f"Zen-Score   : {zen.value:.2f}" + (f" +- {zen.ci95:.2f} (95% interval over {zen.repeat} repeats)"
                                               if zen.ci95 is not None else " (one repeat)"))
    # Higher is better: Zen-NAS ranks architectures of the same budget by this number.

    # What the score was computed on: the conversion report lists every change made to the graph.
    conv = result.conversion or {}
    print(f"conversion  : {conv.get('verdict')}, {conv.get('bn_count')} BN layers kept, "
          f"changes {conv.get('counts')}")

    # Everything is also a plain dict (this is what `zenfx score --json` prints).
    as_dict = result.to_dict()
    print(f"json keys   : {sorted(as_dict)[:6]} ...")


if __name__ == "__main__":
    main()
