"""Depth: copy a block run's last block after it, or remove blocks from its end.

Container keys are renumbered (``features.4`` may become ``features.5``), which is why edits that
name paths replay in order. The copies are new modules; the caller initialises them.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from typing import Any

from torch import nn

from ..errors import GenomeError

_TRAILING = re.compile(r"^(.*?)(\d+)$")


def new_key(last: str, taken: set[str]) -> str:
    match = _TRAILING.match(last)
    stem, num = (match.group(1), int(match.group(2))) if match else (f"{last}_", 0)
    while f"{stem}{num}" in taken:
        num += 1
    return f"{stem}{num}"


def apply_depth(model: nn.Module, site: dict[str, Any], value: int, changed: list[nn.Module],
                made: nn.Module | None = None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Add copies of the run's last block after it, or remove blocks from the run's end.

    A run down to its one shape-changing first block grows by copies of ``made`` instead: the
    shape-preserving version of that block, which the caller makes from the space analysis
    (``zenfx.space.depth.make_block``). ``site`` is a block run of the analysis (container, start,
    count, first_repeats). Returns the plan ((new key, "kept" | "copy" | "make", old key) per child,
    in order) and the removed keys, from which ``zenfx.space.depth.derive`` follows the topology
    without re-tracing."""
    cont = model.get_submodule(site["container"]) if site["container"] else model
    items = list(cont._modules.items())
    s, n = int(site["start"]), int(site["count"])
    numeric = all(k.isdigit() for k, _ in items)
    tagged = [(k, "kept", k, mod) for k, mod in items]
    removed: list[str] = []
    if value > n:
        taken = {k for k, _ in items}
        new = []
        template, kind = items[s + n - 1][1], "copy"
        if n == 1 and not site.get("first_repeats"):
            if made is None:
                raise GenomeError(f"block run '{site['path']}': its one block changes the shape and "
                                  "no shape-preserving version of it can be made")
            template, kind = made, "make"
        for _ in range(value - n):
            block = copy.deepcopy(template)
            key = new_key(new[-1][0] if new else items[s + n - 1][0], taken)
            taken.add(key)
            new.append((key, kind, items[s + n - 1][0], block))
            changed.extend(sm for sm in block.modules() if sm._parameters or sm._buffers)
        tagged = tagged[:s + n] + new + tagged[s + n:]
    else:
        removed = [k for k, _ in items[s + value:s + n]]
        tagged = tagged[:s + value] + tagged[s + n:]
    if numeric:
        tagged = [(str(i), kind, old, mod) for i, (_, kind, old, mod) in enumerate(tagged)]
    cont._modules = OrderedDict((k, mod) for k, _, _, mod in tagged)  # type: ignore[assignment]
    return [(k, kind, old) for k, kind, old, _ in tagged], removed


__all__ = ["apply_depth", "new_key"]
