"""Probe a topology: does every free site really change only what it should?

Static rules can miss what Python code hides (a channel count kept in an attribute, a check in
forward). The probe changes free groups by their smallest step (shrink, or grow at the minimum),
rebuilds, re-traces (eval and train graphs) and compares the WHOLE output shape at batch 2, batch
included (``view(-1, 64)`` hides a wrong width in the batch dim). Groups are probed together
first and bisected only when the joint probe fails, so a clean model costs one rebuild. Kernel
sites are probed the same way; each depth site is probed on its own with one added block, which
must appear in the re-traced graph (a ``for i in range(self.n)`` forward would ignore it).
Failures are frozen with the probe's reason.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..graph import is_tensor_add
from ..surgery import apply_kernel, apply_width
from .analysis import Topology, analysis_trace, read_space, traced_output_shapes
from .depth import apply_depth_edit, derive


def _shapes(model: nn.Module, input_size: Sequence[int]) -> Any:
    return traced_output_shapes(model, input_size)


def _trial(model: nn.Module, input_size: Sequence[int], ref: Any, edit: Callable[[nn.Module], None]) -> str | None:
    m = copy.deepcopy(model)
    try:
        edit(m)
        got = _shapes(m, input_size)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return f"probe: {type(exc).__name__}: {msg}"
    if got != ref:
        return f"probe: output shape {got[0]} instead of {ref[0]}"
    return None


def _bisect(items: list[Any], run: Callable[[list[Any]], str | None], found: dict[Any, str]) -> None:
    why = run(items)
    if why is None:
        return
    if len(items) == 1:
        found[items[0]] = why
        return
    mid = len(items) // 2
    _bisect(items[:mid], run, found)
    _bisect(items[mid:], run, found)


def probe_topology(topo: Topology, model: nn.Module, input_size: Sequence[int]) -> None:
    """Freeze (with the probe's reason) every free site whose smallest change breaks the model."""
    start = time.perf_counter()
    try:
        ref = _shapes(model, input_size)
    except Exception as exc:
        topo.probe = {"ran": False, "reason": f"the seed does not run on meta tensors: {type(exc).__name__}"}
        return
    sp = read_space(topo, model, "", input_size)
    failed, n_groups = _probe_widths(topo, model, input_size, ref, sp)
    kfailed, n_kernels = _probe_kernels(model, input_size, ref, sp)
    dfailed, unmade = _probe_depths(topo, model, input_size, ref)
    for gid, why in failed.items():
        topo.groups[gid]["reasons"].append(why)
    for path, why in kfailed.items():
        topo.kernels[path].append(why)
    for b in topo.blocks:
        if b["path"] in dfailed:
            b["reasons"].append(dfailed[b["path"]])
        if b["path"] in unmade:  # the run keeps a copyable block (min 2) rather than grow by a made one
            b["make"] = None
    topo.probe = {"ran": True, "seconds": round(time.perf_counter() - start, 3), "groups": n_groups,
                  "kernels": n_kernels, "blocks": len(topo.blocks),
                  "frozen": len(failed) + len(kfailed) + len(dfailed)}


def _probe_widths(topo: Topology, model: nn.Module, input_size: Sequence[int], ref: Any, sp: Any
                  ) -> tuple[dict[Any, str], int]:
    """Each free group one step narrower (or wider at its minimum), bisected over groups."""
    targets = {g.id: (g.channels - g.step if g.channels - g.step >= g.min else g.channels + g.step)
               for g in sp.groups if g.free}

    def widths(ids: list[str]) -> str | None:
        return _trial(model, input_size, ref,
                      lambda m: [apply_width(m, topo, gid, targets[gid], []) for gid in ids])  # type: ignore[func-returns-value]

    failed: dict[Any, str] = {}
    if targets:
        _bisect(sorted(targets), widths, failed)
    return failed, len(targets)


def _probe_kernels(model: nn.Module, input_size: Sequence[int], ref: Any, sp: Any) -> tuple[dict[Any, str], int]:
    """Each free kernel site at 5 (3 where it is 5), bisected over sites."""
    kernels = {k.path: (5 if k.kernel != 5 else 3) for k in sp.kernels if k.free}

    def kern(paths: list[str]) -> str | None:
        return _trial(model, input_size, ref,
                      lambda m: [apply_kernel(m, p, kernels[p], []) for p in paths])  # type: ignore[func-returns-value]

    kfailed: dict[Any, str] = {}
    if kernels:
        _bisect(sorted(kernels), kern, kfailed)
    return kfailed, len(kernels)


def _probe_depths(topo: Topology, model: nn.Module, input_size: Sequence[int], ref: Any
                  ) -> tuple[dict[str, str], list[str]]:
    """Each free run one block longer; a run whose first block changes the shape also down to that
    block and up again by a made block."""
    dfailed: dict[str, str] = {}
    unmade: list[str] = []
    for site in topo.blocks:
        if not site["reasons"]:
            why = _depth_trial(model, input_size, ref, site, topo, apply_depth_edit)
            if why:
                dfailed[site["path"]] = why
            elif site.get("make") and int(site["count"]) > 1 and _remake_trial(model, input_size, ref, site, topo):
                unmade.append(site["path"])
    return dfailed, unmade


def _depth_trial(model: nn.Module, input_size: Sequence[int], ref: Any, site: dict[str, Any], topo: Topology,
                 apply_depth: Callable[..., Any], m: nn.Module | None = None) -> str | None:
    m = copy.deepcopy(model) if m is None else m
    added: list[nn.Module] = []
    try:
        plan, _ = apply_depth(m, site, int(site["count"]) + 1, added, topo)
        gm = analysis_trace(m)
    except Exception as exc:
        return f"probe: adding a block fails: {type(exc).__name__}"
    used = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    paths = {id(mod): p for p, mod in m.named_modules()}
    new_paths = [paths[id(a)] for a in added if id(a) in paths and any(True for _ in a.parameters(recurse=False))]
    if new_paths and not any(p in used for p in new_paths):
        return "probe: an added block is never called by forward (a loop over a fixed count?)"
    prefix = f"{site['container']}." if site["container"] else ""
    made = [prefix + k for k, kind, _ in plan if kind == "make"]
    if made and not any(made[0] in (n.meta.get("nn_module_stack") or {}) and is_tensor_add(n)
                        for n in gm.graph.nodes):
        return "probe: a shape-preserving version of the block has no residual add"
    try:
        got = _shapes(m, input_size)
    except Exception as exc:
        return f"probe: adding a block fails: {type(exc).__name__}"
    if got != ref:
        return f"probe: adding a block changes the output shape to {got[0]}"
    return None


def _remake_trial(model: nn.Module, input_size: Sequence[int], ref: Any, site: dict[str, Any],
                  topo: Topology) -> str | None:
    """A run of several blocks whose first changes the shape: down to that block, then up again by
    a made block (what a search does when it shrinks the run to 1 and grows it)."""
    m = copy.deepcopy(model)
    try:
        plan, removed = apply_depth_edit(m, site, 1, [], topo)
        small = derive(topo, site, plan, removed)
        site1 = next(b for b in small.blocks if b["path"] == site["path"])
    except Exception as exc:
        return f"probe: removing blocks fails: {type(exc).__name__}"
    return _depth_trial(m, input_size, ref, site1, small, apply_depth_edit, m)
