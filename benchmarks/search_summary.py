"""Throughput of a `zenfx search` run from its files: candidates per second, where the workers' time
went (the proxy's share), and best vs seed. Used by benchmarks/gpu_search.sh; works on any run.

    ./dev python benchmarks/search_summary.py RUN_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip()) if "zenfx_log" not in r]


def summary(run: Path) -> dict:
    hist = rows(run / "history.jsonl")
    tim = [t for t in rows(run / "timings.jsonl") if t["id"] > 0]
    seed = next(r for r in hist if r.get("verdict") == "seed")
    scored = [r for r in hist if r.get("verdict") == "scored"]
    wall = sum(t.get("seconds") or 0.0 for t in tim)
    proxy = sum(t.get("proxy") or 0.0 for t in tim)
    cpu = sum(t.get("cpu") or 0.0 for t in tim)
    proxy_cpu = sum(t.get("proxy_cpu") or 0.0 for t in tim)
    elapsed = max((t.get("t") or 0.0 for t in tim), default=0.0)
    return {"run": str(run), "proposed": len(hist) - 1, "scored": len(scored), "search_s": round(elapsed, 1),
            "candidates_per_s": round((len(hist) - 1) / elapsed, 3) if elapsed else None,
            "proxy_share_of_worker_wall": round(proxy / wall, 3) if wall else None,
            "proxy_share_of_worker_cpu": round(proxy_cpu / cpu, 3) if cpu else None,
            "cpu_total_s": tim[-1].get("cpu_total") if tim else None,
            "seed_score": seed.get("score"), "best_score": max((r["score"] for r in scored), default=None)}


if __name__ == "__main__":
    s = summary(Path(sys.argv[1]))
    width = max(len(k) for k in s)
    for k, v in s.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps(s))
