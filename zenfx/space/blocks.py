"""Which blocks a run of one can grow by: the shape-preserving version of a shape-changing block.

Read from the graph and the module (no topology needed), so both the analysis (which offers the
depth site) and the depth derivation (which makes the block) use it without importing each other.
"""

from __future__ import annotations

import math
from typing import Any

from .channels import Layer

SKIP_FLAGS = ("use_res_connect", "has_skip", "has_residual", "use_residual", "use_shortcut")


def _refs(layers: list[Layer]) -> set[str]:
    return {g for lay in layers for g in (lay.out_group, *(p for p, _ in lay.in_parts)) if g}


def make_groups(layers: list[Layer], block_path: str) -> tuple[str, str] | None:
    """(input group, output group) of the shape-changing block at ``block_path``: the one group its
    layers read that was made before it, and the one group it makes that later layers read."""
    prefix = block_path + "."
    idx = [i for i, lay in enumerate(layers) if lay.path.startswith(prefix)]
    if not idx:
        return None
    mine = _refs([layers[i] for i in idx])
    after = _refs(layers[idx[-1] + 1:])
    g_in = sorted(g for g in mine if not g.startswith(prefix))
    g_out = sorted(g for g in mine if g.startswith(prefix) and g in after)
    if len(g_in) != 1 or len(g_out) != 1 or g_in == g_out:
        return None
    return g_in[0], g_out[0]


def has_skip_flag(block: Any) -> bool:
    return any(isinstance(getattr(block, a, None), bool) for a in SKIP_FLAGS)


def make_info(model: Any, gm: Any, block_path: str, io: tuple[Any, Any], layers: list[Layer]
              ) -> dict[str, Any] | None:
    """How to make a shape-preserving version of the block at ``block_path`` (None: it cannot be
    made): the module paths (relative to the block) that only its projection shortcut uses, the
    skip flags to set, and the block's input and output positions (H*W)."""
    from ..graph import input_dependent, residual_branches

    if make_groups(layers, block_path) is None or io[0] is None or io[1] is None:
        return None
    block = model.get_submodule(block_path)
    prefix = block_path + "."
    dep = input_dependent(gm)
    shortcut: set[str] = set()
    has_add = False
    for n in gm.graph.nodes:
        if block_path not in (n.meta.get("nn_module_stack") or {}):
            continue
        rb = residual_branches(gm, n, dep)
        if rb is None:
            continue
        has_add = True
        shortcut |= {str(x.target)[len(prefix):] for x in rb.shortcut_region
                     if x.op == "call_module" and str(x.target).startswith(prefix)}
    used = {str(n.target)[len(prefix):] for n in gm.graph.nodes
            if n.op == "call_module" and str(n.target).startswith(prefix)}
    main = used - shortcut
    drop: set[str] = set()
    for q in sorted(shortcut):
        parts = q.split(".")
        for k in range(1, len(parts) + 1):
            top = ".".join(parts[:k])
            if not any(m == top or m.startswith(top + ".") for m in main):
                drop.add(top)
                break
    drop = {d for d in drop if not any(d.startswith(o + ".") for o in drop)}
    flags = [] if has_add else [a for a in SKIP_FLAGS if getattr(block, a, None) is False]
    if not has_add and not flags:
        return None  # the copy would have no residual add: it would not be a repeatable block
    return {"drop": sorted(drop), "set": flags,
            "hw": [math.prod(io[0][2:]), math.prod(io[1][2:])]}


def _optional_arg(block: Any, name: str) -> bool:
    """The block's constructor takes ``name`` with default None (torchvision's and timm's ResNet
    blocks: ``downsample=None``): the block without it is what the constructor builds by default."""
    import inspect

    try:
        p = inspect.signature(type(block).__init__).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return p is not None and p.default is None


def _dropped(rel: str, drop: list[str]) -> bool:
    return any(rel == d or rel.startswith(d + ".") for d in drop)


