"""Rescore the K best members of a `zenfx search` run with more repeats: how optimistic is the
search's best single draw, and which member is best by the rescored mean (what ``--crown-repeats``
would crown)? The scores are ``zenfx score GENOME -b BATCH -n REPEATS --seed SEED``'s.

    ./dev python benchmarks/rescore_top.py RUN_DIR [--top 8] [--repeats 12] [--save best_rescored.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--save", default=None, help="write the best genome by rescored mean here")
    args = ap.parse_args()
    import torch

    import zenfx
    from zenfx.genome import Genome

    torch.set_num_threads(1)
    run = Path(args.run)
    ck = json.loads((run / "checkpoint.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    members = sorted(ck["population"], key=lambda m: -m["score"])[: args.top]
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for m in members:
        path = Genome.from_dict(m["genome"]).save(tmp / f"m{m['id']}.json")  # scored as `zenfx score FILE` does
        c0 = time.process_time()
        r = zenfx.score(str(path), "zen", batch_size=cfg["batch_size"], repeat=args.repeats, seed=cfg["seed"])
        p = r["zen"]
        rows.append({"id": m["id"], "search": m["score"], "mean": p.value, "ci95": p.ci95, "first": p.values[0],
                     "params": m["figures"].get("params"), "depth": m["figures"].get("depth"),
                     "cpu_s": round(time.process_time() - c0, 2), "genome": m["genome"]})
        print(f"#{m['id']:>5}  search {m['score']:8.3f}  rescored {p.value:8.3f} +- {p.ci95:.3f} "
              f"(first repeat {p.values[0]:.3f})  params {m['figures'].get('params')}  depth "
              f"{m['figures'].get('depth')}  {rows[-1]['cpu_s']} CPU-s", flush=True)
    best = max(rows, key=lambda r: r["mean"])
    print(f"best by rescored mean: #{best['id']} {best['mean']:.3f} +- {best['ci95']:.3f} "
          f"(search {best['search']:.3f}); best by search: #{rows[0]['id']} rescored {rows[0]['mean']:.3f}")
    if args.save:
        Genome.from_dict(best["genome"]).save(args.save)


if __name__ == "__main__":
    main()
