"""Evolve your own backbone under a parameter budget, export the best network, train it an epoch.

The backbone is examples/my_backbone.py: an ordinary nn.Module with residuals, SiLU and SE gates.
zenfx mutates its widths, kernels and depth on the real graph (the search scores each candidate's
vanilla-CNN form with the Zen-Score), and hands back a genome that rebuilds the network from your
own classes. The export is a standalone torch-only .py file plus its weights.

    ./dev python examples/evolve_my_backbone.py [RUN_DIR]          # 300 candidates
    ZENFX_EXAMPLE_FAST=1 ./dev python examples/evolve_my_backbone.py [RUN_DIR]   # 6 candidates (the test)

The same from the shell:
    ./dev zenfx search examples/my_backbone.py:build -r 32 --budget-params 100k --candidates 300 --out RUN_DIR
    ./dev zenfx export RUN_DIR/best.json --out my_net.py --weights
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import zenfx

FAST = os.environ.get("ZENFX_EXAMPLE_FAST") == "1"
BACKBONE = str(Path(__file__).resolve().with_name("my_backbone.py")) + ":build"


def evolve(run_dir: Path) -> zenfx.SearchResult:
    # Budgets are checked before scoring (cheapest first), so no candidate over 100k parameters is
    # ever scored; the seed itself (about 40k) is the starting population's first member.
    return zenfx.search(
        BACKBONE, out=run_dir, resolution=32, num_classes=10,
        budget_params="100k",
        candidates=6 if FAST else 300, population=3 if FAST else 32,
        batch_size=8 if FAST else 64,  # Gaussian inputs per Zen-Score forward pass
        workers=0 if FAST else None,   # 0: score in this process; None: one worker per core
        plots=not FAST, export=False, seed=0,
        notify=print,
    )


def load_exported(path: Path, class_name: str) -> type[nn.Module]:
    spec = importlib.util.spec_from_file_location("my_evolved_net", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, class_name)


def train_one_epoch(net: nn.Module, batches: int) -> list[float]:
    """One epoch of SGD on random images and labels: proof that the exported network trains."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    losses = []
    for _ in range(batches):
        x = torch.randn(16, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (16,), generator=gen)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(run_dir: str | None = None) -> None:
    torch.set_num_threads(1)
    out = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="zenfx-evolve-"))
    result = evolve(out / "search")
    seed, best = result.seed, result.best or result.seed
    print(f"seed: Zen {seed['score']:.2f}, {seed['figures'].get('params')} params")
    edits = [(e["kind"], e["target"], e["value"]) for e in best["genome"]["edits"]]
    print(f"best: Zen {best['score']:.2f}, {best['figures'].get('params')} params, {len(edits)} edit(s) {edits}")

    # The best genome is JSON (seed spec + ordered edits); zenfx.build(genome) replays it exactly.
    genome_file = result.files["best"]
    exported = zenfx.export_model(genome_file, out / "my_evolved_net.py", weights=True, class_name="MyEvolvedNet")
    print(f"exported: {exported.module_path} (+ {exported.weights_path}), {exported.params:,} params")

    # The exported file needs only torch: import it, load the weights, train.
    net = load_exported(Path(exported.module_path), exported.class_name)()
    net.load_state_dict(torch.load(exported.weights_path, weights_only=True))
    losses = train_one_epoch(net, batches=4 if FAST else 50)
    print(f"one epoch on random data: loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps")
    print(f"run folder: {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
