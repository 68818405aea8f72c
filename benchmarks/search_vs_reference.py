"""Best score of a `zenfx search` run against CPU seconds, next to the Zen-NAS reference's CIFAR-1M search.

    ./dev python benchmarks/search_vs_reference.py RUN_DIR

The reference (idstcv/ZenNAS ``evolution_search.py``: 1M params, max_layers 18, batch 64, 32x32,
population 512) run on one CPU thread of this project's machine reached best Zen 65.2 after 115
CPU-seconds, 80.2 after 600, 97.9 after 1,394 and 100.1 after 1,598 (2,250 proposals); its
released 1M network scores 123.2 after 480k proposals on GPUs (figures from issue 11).

CPU seconds of the zenfx run are the workers' ``time.process_time`` plus the main process's
(``cpu_total`` in RUN_DIR/timings.jsonl, cumulative at each candidate), so contention from other
jobs on a shared machine does not count against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REFERENCE = [(115, 65.2), (600, 80.2), (1394, 97.9), (1598, 100.1)]


def rows(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if "zenfx_log" not in r:
            out.append(r)
    return out


def curve(run: Path) -> list[tuple[float, float, int, float]]:
    """(cumulative CPU s, best single-draw score so far, candidates proposed, best crowned score so
    far) after every candidate; the crowned score is a would-be best's ``--crown-repeats`` mean
    (-inf in a run without crowning)."""
    cpu = {r["id"]: r.get("cpu_total") for r in rows(run / "timings.jsonl")}
    best = crowned = -float("inf")
    out = []
    for r in rows(run / "history.jsonl"):
        if r.get("verdict") == "scored" and r.get("score") is not None:
            best = max(best, float(r["score"]))
        if r.get("verdict") == "scored" and r.get("crown") is not None:
            crowned = max(crowned, float(r["crown"]))
        c = cpu.get(r["id"])
        if c is not None and r["id"] > 0:
            out.append((float(c), best, int(r["id"]), crowned))
    return out


def _fmt(v: float) -> str:
    return f"{v:.1f}" if v > -float("inf") else "—"


def main() -> None:
    run = Path(sys.argv[1])
    pts = curve(run)
    if not pts:
        sys.exit(f"{run}: no candidates yet")
    seed = next(r for r in rows(run / "history.jsonl") if r.get("verdict") == "seed")
    print(f"{run}: seed score {seed['score']:.2f}; {len(pts)} candidates, {pts[-1][0]:.0f} CPU-s in all")
    print(f"{'CPU-s':>8} {'reference best Zen':>20} {'zenfx best':>12} {'crowned best':>13} {'zenfx candidates':>18}")
    for t, ref in REFERENCE:
        done = [p for p in pts if p[0] <= t]
        ours, crown = (_fmt(done[-1][1]), _fmt(done[-1][3])) if done else ("—", "—")
        n = str(done[-1][2]) if done else "0"
        if pts[-1][0] < t:
            ours, crown, n = f"(run ended at {pts[-1][0]:.0f} CPU-s)", "", "—"
        print(f"{t:>8} {ref:>20.1f} {ours:>12} {crown:>13} {n:>18}")
    last = pts[-1]
    print(f"{last[0]:>8.0f} {'':>20} {last[1]:>12.1f} {_fmt(last[3]):>13} {last[2]:>18}   (end of run)")


if __name__ == "__main__":
    main()
