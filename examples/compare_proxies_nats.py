"""Compare zero-shot proxies on NATS-Bench-SSS: do they rank networks like their trained accuracy?

NATS-Bench's size search space has 32,768 networks (five widths in {8..64}) whose CIFAR-100 test
accuracy after training is published. A good proxy ranks a sample of them in the same order as
that accuracy, without training anything: Kendall's tau and Spearman's rho measure the agreement.

    ./dev python examples/compare_proxies_nats.py [TRUTH_DIR]       # 50 networks, 5 proxies
    ZENFX_EXAMPLE_FAST=1 ./dev python examples/compare_proxies_nats.py   # 6 networks, 2 proxies (the test)

TRUTH_DIR holds natsbench_sss.csv (columns index, channels, cifar100_test); default: ../shared/data
beside the checkout or $ZENFX_TRUTH. The full benchmark command: ./dev zenfx bench proxies --space nats-sss
"""

from __future__ import annotations

import csv
import os
import random
import sys
from pathlib import Path

import torch
from scipy import stats

import zenfx
from zenfx.zoo.natsbench import nats_sss

FAST = os.environ.get("ZENFX_EXAMPLE_FAST") == "1"
N_NETS = 6 if FAST else 50
PROXIES = ["zen", "params"] if FAST else ["zen", "params", "flops", "synflow", "naswot"]


def truth_dir(arg: str | None) -> Path:
    here = Path(__file__).resolve().parents[1]
    for cand in (arg, os.environ.get("ZENFX_TRUTH"), here.parent / "shared" / "data"):
        if cand and (Path(cand) / "natsbench_sss.csv").is_file():
            return Path(cand)
    raise SystemExit("natsbench_sss.csv not found: pass its folder as the first argument")


def main(arg: str | None = None) -> None:
    torch.set_num_threads(1)
    with open(truth_dir(arg) / "natsbench_sss.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sample = random.Random(0).sample(rows, N_NETS)  # a seeded sample: the same networks every run

    scores: dict[str, list[float]] = {p: [] for p in PROXIES}
    accuracy = []
    for row in sample:
        # The zoo builds the benchmark's network from its width string, as an ordinary nn.Module.
        net = nats_sss(row["channels"], num_classes=100)
        # All proxies in one call: zenfx traces and converts once; each proxy runs on the graph its
        # paper uses (Zen on the vanilla-CNN form, the others on the original network).
        result = zenfx.score(net, ",".join(PROXIES), input_size=(3, 32, 32), batch_size=8 if FAST else 32,
                             repeat=1, num_classes=100, seed=0)
        for p in PROXIES:
            scores[p].append(result[p].value)
        accuracy.append(float(row["cifar100_test"]))
        shown = "  ".join(f"{p} {scores[p][-1]:.4g}" for p in PROXIES)
        print(f"{row['channels']:>16s}  acc {accuracy[-1]:5.2f}  {shown}")

    print(f"\nrank agreement with CIFAR-100 accuracy over {N_NETS} networks (1 = same order):")
    for p in PROXIES:
        tau = stats.kendalltau(scores[p], accuracy).statistic
        rho = stats.spearmanr(scores[p], accuracy).statistic
        print(f"  {p:8s} Kendall tau {tau:+.3f}   Spearman rho {rho:+.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
