"""Turn a finished ``zenfx search`` run into a zoo entry (kind "found") under ``zoo/found/``.

A found entry is the best genome of the run (what rebuilds the network, weights included) plus how
it was found: the exact command, when, the wall and CPU time it took, the best score against the
seed's, the budgets and the figures. A reader can then rebuild it (``zoo:NAME``), train it, or
export it (``zenfx export zoo:NAME``):

    ./dev python -m zenfx.zoo.found RUN_DIR NAME --command "zenfx search ..." [--description TEXT]
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from zenfx.errors import UsageError
from zenfx.runlog import atomic_write_text

from . import registry
from .registry import FOUND_FORMAT, refresh

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} is not a JSON object")
    return data


def entry_from_run(run_dir: str | os.PathLike[str], name: str, *, command: str, description: str | None = None,
                   date: str | None = None, found_dir: Path | None = None) -> Path:
    """Write ``found_dir/NAME.json`` from RUN_DIR's ``summary.json`` (and ``config.json``)."""
    if not _NAME.match(name):
        raise UsageError(f"found-net name {name!r} must be lower-case letters, digits and '_'")
    run = Path(run_dir)
    summary = _read(run / "summary.json", "search summary")
    config = _read(run / "config.json", "search config") if (run / "config.json").is_file() else {}
    best = summary.get("best") or {}
    if "genome" not in best:
        raise UsageError(f"{run} has no best genome (did the search score any candidate?)")
    seed = summary.get("seed") or {}
    found = {
        "command": command,
        "date": date or _dt.datetime.fromtimestamp((run / "summary.json").stat().st_mtime,
                                                   _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "proxy": summary.get("proxy"), "score": best.get("score"), "seed_score": seed.get("score"),
        "figures": best.get("figures"), "seed_figures": seed.get("figures"), "budgets": summary.get("budgets"),
        "counters": summary.get("counters"), "elapsed_s": summary.get("elapsed_s"),
        "cpu_s": (summary.get("worker_cpu_s") or 0) + (summary.get("main_cpu_s") or 0),
        "stopped": summary.get("stopped"),
        "settings": {k: config[k] for k in ("batch_size", "bn_stat", "num_classes", "population", "round_size",
                                            "seed", "kinds", "candidates", "time_limit", "workers") if k in config},
    }
    doc = {"format": FOUND_FORMAT, "version": 1, "name": name,
           "description": description or f"found by zenfx search from {best['genome'].get('seed')}",
           "genome": best["genome"], "found": found}
    out_dir = found_dir or registry.FOUND_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.json"
    atomic_write_text(target, json.dumps(doc, indent=1) + "\n")
    refresh()
    return target


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zenfx.zoo.found", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--command", required=True, help="the exact command that ran the search")
    parser.add_argument("--description")
    parser.add_argument("--date", help="when it ran (default: summary.json's time)")
    args = parser.parse_args(argv)
    try:
        path = entry_from_run(args.run_dir, args.name, command=args.command, description=args.description,
                              date=args.date)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
