"""Seed versus best, stage by stage: output width, blocks, convolutions and kernel sizes per top-level
container of the model (``layer1``, ``features.3``...), read from the built networks on the meta device.

A "stage" is the first component of a conv's module path (for ``features``-style models, the first
two), so a torchvision ResNet reads as conv1, layer1..layer4. Stored in summary.json so that
``zenfx plot`` redraws without building any model.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _stage_of(path: str) -> str:
    parts = path.split(".")
    if len(parts) > 2 and parts[1].isdigit() and parts[0] in ("features", "blocks", "stages", "trunk", "body"):
        return ".".join(parts[:2])
    return parts[0] if len(parts) > 1 else path


def stages_of(model: nn.Module) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or not path:
            continue
        name = _stage_of(path)
        st = out.setdefault(name, {"stage": name, "width": 0, "convs": 0, "blocks": set(), "kernels": set()})
        st["width"] = int(m.out_channels)
        st["convs"] += 1
        rest = path[len(name) + 1:].split(".") if path != name else []
        st["blocks"].add(rest[0] if rest and rest[0].isdigit() else "")
        st["kernels"].add(int(m.kernel_size[0]))
    rows = []
    for st in out.values():
        rows.append({"stage": st["stage"], "width": st["width"], "convs": st["convs"],
                     "blocks": len(st["blocks"]), "kernels": sorted(st["kernels"])})
    return rows


def stage_table(seed_genome: dict[str, Any], best_genome: dict[str, Any] | None) -> dict[str, Any]:
    from ..genome import Genome, build

    seed = stages_of(build(Genome.from_dict(seed_genome), device="meta"))
    best = stages_of(build(Genome.from_dict(best_genome), device="meta")) if best_genome else []
    return {"seed": seed, "best": best}


__all__ = ["stage_table", "stages_of"]
