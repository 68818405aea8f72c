"""Pictures of a search, drawn from RUN_DIR's files alone (``zenfx plot RUN_DIR`` redraws them):

* ``progress.png``: best and median score of the population against candidates proposed and
  against search time;
* ``score_vs_macs.png`` / ``score_vs_params.png``: every scored candidate, the seed, the best and
  the Pareto front (highest score for at most that cost);
* ``stages.png``: seed versus best per stage (output width, blocks, kernel).

matplotlib with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and "zenfx_log" not in r:
            out.append(r)
    return out


def progress_curves(history: list[dict[str, Any]], population: int) -> dict[str, list[float]]:
    """Replay the population: after every candidate, best and median score of the members."""
    members: list[float] = []
    xs, best, median, ids = [], [], [], []
    for r in history:
        if r.get("verdict") != "scored" or r.get("score") is None:
            continue
        members.append(float(r["score"]))
        if len(members) > population:
            members.pop(members.index(min(members)))
        s = sorted(members)
        n = len(s)
        xs.append(float(r["id"]))
        ids.append(int(r["id"]))
        best.append(s[-1])
        median.append(s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))
    return {"x": xs, "best": best, "median": median, "ids": ids}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by a cheaper-or-equal point with a higher-or-equal score (sorted by cost)."""
    front: list[tuple[float, float]] = []
    top = -float("inf")
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > top:
            front.append((cost, score))
            top = score
    return front


def draw(run_dir: str | Path) -> list[str]:
    """Write every plot into RUN_DIR/plots; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rd = Path(run_dir)
    if not (rd / "history.jsonl").exists():
        raise UsageError(f"{rd} is not a search run folder (no history.jsonl)")
    history = _rows(rd / "history.jsonl")
    timings = {int(r["id"]): r for r in _rows(rd / "timings.jsonl") if "id" in r}
    cfg = _json(rd / "config.json")
    summary = _json(rd / "summary.json")
    out = rd / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    seed = next((r for r in history if r.get("verdict") == "seed"), None)
    scored = [r for r in history if r.get("verdict") == "scored" and r.get("score") is not None]
    if not scored:
        return written
    written.append(_progress_plot(plt, history, timings, cfg, seed, out / "progress.png"))
    best = max(scored, key=lambda r: r["score"])
    for fig_name, key, label in (("score_vs_macs.png", "macs", "MACs"), ("score_vs_params.png", "params", "params")):
        pts = [(float(r[key]), float(r["score"])) for r in scored if r.get(key) is not None]
        if pts:
            written.append(_cost_plot(plt, pts, seed, best, cfg, key, label, out / fig_name))
    stages = (summary or {}).get("stages") or {}
    if stages.get("seed") and stages.get("best"):
        written.append(_stage_plot(plt, stages, out / "stages.png"))
    return written


def _progress_plot(plt: Any, history: list[dict[str, Any]], timings: dict[int, dict[str, Any]],
                   cfg: dict[str, Any], seed: dict[str, Any] | None, path: Path) -> str:
    """Best and median score of the population against candidates proposed and against search time."""
    proxy = cfg.get("proxy", "score")
    curves = progress_curves(history, int(cfg.get("population", 10**9)))
    t = [float(timings.get(i, {}).get("t", float("nan"))) for i in curves["ids"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, xs, label in ((axes[0], curves["x"], "candidates proposed"), (axes[1], t, "search time (s)")):
        ax.plot(xs, curves["best"], label="best", color="tab:red")
        ax.plot(xs, curves["median"], label="population median", color="tab:blue")
        if seed is not None and seed.get("score") is not None:
            ax.axhline(float(seed["score"]), color="gray", ls="--", lw=1, label="seed")
        ax.set_xlabel(label)
        ax.set_ylabel(proxy)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{cfg.get('seed_spec', '')}: {proxy} under {_budget_text(cfg)}")
    fig.tight_layout()
    written = _save(fig, path)
    plt.close(fig)
    return written


def _cost_plot(plt: Any, pts: list[tuple[float, float]], seed: dict[str, Any] | None, best: dict[str, Any],
               cfg: dict[str, Any], key: str, label: str, path: Path) -> str:
    """Every scored candidate against one cost (``key``), with the Pareto front, seed, best and budget."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=8, alpha=0.4, label="candidates", color="tab:blue")
    front = pareto(pts)
    ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:orange", marker="o", ms=3,
            label="Pareto front")
    if seed is not None and seed.get(key) is not None:
        ax.scatter([seed[key]], [seed["score"]], marker="s", s=60, color="black", label="seed", zorder=5)
    if best.get(key) is not None:
        ax.scatter([best[key]], [best["score"]], marker="*", s=160, color="tab:red", label="best", zorder=6)
    limit = (cfg.get("budgets") or {}).get(key)
    if limit:
        ax.axvline(float(limit), color="gray", ls=":", label="budget")
    ax.set_xlabel(label)
    ax.set_ylabel(cfg.get("proxy", "score"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    written = _save(fig, path)
    plt.close(fig)
    return written


def _stage_plot(plt: Any, stages: dict[str, Any], path: Path) -> str:
    names = [s["stage"] for s in stages["best"]]
    seed = {s["stage"]: s for s in stages["seed"]}
    best = {s["stage"]: s for s in stages["best"]}
    names += [n for n in seed if n not in best]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = list(range(len(names)))
    for ax, field, title in ((axes[0], "width", "output width"), (axes[1], "blocks", "blocks"),
                             (axes[2], "kernels", "largest kernel")):
        ax.bar([i - 0.2 for i in x], [_stage_value(seed.get(n), field) for n in names], width=0.4, label="seed",
               color="gray")
        ax.bar([i + 0.2 for i in x], [_stage_value(best.get(n), field) for n in names], width=0.4, label="best",
               color="tab:red")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def _stage_value(d: dict[str, Any] | None, field: str) -> float:
    if d is None:
        return 0.0
    v = d[field]
    return float(max(v)) if isinstance(v, list) else float(v)


def _save(fig: Any, path: Path) -> str:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return str(path)


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}


def _budget_text(cfg: dict[str, Any]) -> str:
    from .budget import ORDER, fmt_figure

    b = cfg.get("budgets") or {}
    parts = [f"{k} <= {fmt_figure(k, b[k])}" for k in ORDER if b.get(k) is not None]
    return ", ".join(parts) if parts else "no budget"


__all__ = ["draw", "pareto", "progress_curves"]
