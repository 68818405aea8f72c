"""Measured figures of the zoo's entries, stored as data so that ``zenfx zoo`` never scores live.

``zoo/figures.json`` maps an entry name to its parameter count and MACs at the entry's default
size and its official Zen-Score, each with the exact command that measured it, the date and the
versions. Refresh after changing an entry (it takes minutes for the large ImageNet nets on CPU):

    ./dev python -m zenfx.zoo.figures [PATTERN ...]     # all entries, or those matching
    ./dev python -m zenfx.zoo.figures --device cuda --file OUT.json 'zennet_imagenet*'

The ImageNet-size nets (up to 22 GMACs) take hours per score on a shared 2-core CPU, so their
Zen-Scores were measured on a GPU with ``--device cuda``; the stored command says so.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zenfx.runlog import atomic_write_text

FIGURES_FILE = Path(__file__).resolve().parent / "figures.json"


def load(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The stored figures by entry name ({} when the file is missing or unreadable)."""
    try:
        return dict(json.loads((path or FIGURES_FILE).read_text()).get("entries", {}))
    except (OSError, ValueError):
        return {}


def _save(entries: dict[str, dict[str, Any]], path: Path | None = None) -> None:
    path = path or FIGURES_FILE
    doc = {"about": "measured by `python -m zenfx.zoo.figures`; every figure carries its command", "entries": entries}
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cost(name: str) -> dict[str, Any]:
    """Parameters and MACs at the entry's default size, from a meta-device build (no memory)."""
    import zenfx
    from zenfx.zoo.registry import get_entry

    entry = get_entry(name)
    model = zenfx.resolve_model(entry.spec, device="meta").module
    return {"params": sum(p.numel() for p in model.parameters()),
            "macs": int(zenfx.count_macs(model, entry.input_size)),
            "input_size": list(entry.input_size),
            "cost_command": f"zenfx report {entry.spec}", "cost_date": _now()}


def zen(name: str, timeout: float = 3600, device: str = "cpu") -> dict[str, Any]:
    """The official Zen-Score by the CLI itself, with its defaults (batch 16, 4 repeats, seed 0)."""
    exe = Path(sys.executable).with_name("zenfx")
    extra = [] if device == "cpu" else ["--device", device]
    argv = [str(exe), "score", f"zoo:{name}", "--json", *extra]
    command = " ".join(["./dev zenfx score", f"zoo:{name}", *extra])
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"zen_error": (proc.stderr.strip().splitlines() or ["?"])[-1], "zen_command": command}
    data = json.loads(proc.stdout)
    z = data["scores"]["zen"]
    import torch

    return {"zen": z["value"], "zen_ci95": z.get("ci95"), "zen_repeat": z.get("repeat"),
            "zen_batch_size": data.get("batch_size"), "zen_bn_stat": data.get("bn_stat"),
            "zen_command": command, "zen_date": _now(), "zen_wall_s": round(wall, 1),
            "zen_device": _device_name(data.get("device", "cpu")), "torch": torch.__version__.split("+")[0]}


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(0)})"
    return device


def main(argv: list[str] | None = None) -> int:
    import argparse

    from zenfx.zoo.registry import list_entries

    parser = argparse.ArgumentParser(prog="python -m zenfx.zoo.figures", description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="*", help="entry names or patterns (default: all)")
    parser.add_argument("--device", default="cpu", help="device for the Zen-Score (cpu, cuda)")
    parser.add_argument("--file", type=Path, default=FIGURES_FILE, help="figures file to update")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(e.name for p in (args.patterns or [None]) for e in list_entries(p)))
    for name in names:
        row = {**cost(name), **zen(name, device=args.device)}
        entries = load(args.file)
        entries[name] = row
        _save(entries, args.file)
        print(f"{name}: params {row['params']:,} macs {row['macs']:,} zen {row.get('zen', row.get('zen_error'))} "
              f"({row.get('zen_wall_s', '?')} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
