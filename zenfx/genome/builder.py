"""Replay: a genome's seed with its edits applied in order (``build``), each checked first.

Each edit is checked against the space of the model *as it is at that point*: the topology of the
seed (cached) or, after a depth edit, of the derived topology. A build resolves the seed under
``torch.manual_seed(genome.init_seed)`` and initialises every changed layer at the end, in module
order, as its family would, so replaying a genome twice gives an identical state dict.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..loading import LoadedModel
from ..space import KERNEL_CHOICES, Topology, depth_limits, group_limits
from ..space.channels import OPAQUE_PREFIX
from ..space.depth import apply_depth_edit
from ..surgery import apply_kernel, apply_width, channels_of, fix_metadata, initialise, respread_drop_path
from .data import Edit, Genome, GenomeError, UsageError, as_genome
from .key import module_key
from .seeds import depth_topology, meta_seed, resolve_seed, seed_key, seed_topology


def _where(i: int, e: Edit) -> str:
    return f"edit {i + 1} ({e.kind} {e.target} -> {e.value})"


def _close(name: str, options: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def check_edit(i: int, e: Edit, topo: Topology, model: nn.Module, seed: str) -> dict[str, Any] | None:
    """Raise a one-line GenomeError when ``e`` does not fit the model as it is now; return the depth site."""
    where = _where(i, e)
    if e.kind == "width":
        _check_width(where, e, topo, model, seed)
        return None
    if e.kind == "kernel":
        _check_kernel(where, e, topo, seed)
        return None
    return _check_depth(where, e, topo, seed)


def _check_width(where: str, e: Edit, topo: Topology, model: nn.Module, seed: str) -> None:
    meta = topo.groups.get(e.target)
    if meta is None or e.target.startswith(OPAQUE_PREFIX):
        named = [g for g in topo.groups if not g.startswith(OPAQUE_PREFIX)]
        raise GenomeError(f"{where}: {seed} has no channel group '{e.target}'{_close(e.target, named)}")
    if meta["reasons"]:
        raise GenomeError(f"{where}: group '{e.target}' is frozen: {meta['reasons'][0]}")
    c = channels_of(topo, model, e.target)
    step, lo, hi = group_limits(meta, c)
    if e.value % step or not lo <= e.value <= hi:
        raise GenomeError(f"{where}: width must be a multiple of {step} in [{lo}, {hi}] (group has {c})")


def _check_kernel(where: str, e: Edit, topo: Topology, seed: str) -> None:
    if e.target not in topo.kernels:
        raise GenomeError(f"{where}: {seed} has no kernel site '{e.target}'{_close(e.target, topo.kernels)}")
    if topo.kernels[e.target]:
        raise GenomeError(f"{where}: kernel of '{e.target}' is frozen: {topo.kernels[e.target][0]}")
    if e.value not in KERNEL_CHOICES:
        raise GenomeError(f"{where}: kernel must be one of {', '.join(map(str, KERNEL_CHOICES))}")


def _check_depth(where: str, e: Edit, topo: Topology, seed: str) -> dict[str, Any]:
    site = next((b for b in topo.blocks if b["path"] == e.target), None)
    if site is None:
        raise GenomeError(f"{where}: {seed} has no block run '{e.target}'"
                          f"{_close(e.target, [b['path'] for b in topo.blocks])}")
    if site["reasons"]:
        raise GenomeError(f"{where}: depth of '{e.target}' is frozen: {site['reasons'][0]}")
    lo, hi = depth_limits(site)
    if not lo <= e.value <= hi:
        raise GenomeError(f"{where}: depth of '{e.target}' must be in [{lo}, {hi}]")
    return site


def replay(g: Genome, model: nn.Module, *, probe: bool = True, cache: bool = True
           ) -> tuple[nn.Module, Topology, list[nn.Module]]:
    """Apply ``g.edits`` in order to ``model`` (a fresh copy of the seed); returns the topology at the end."""
    model, topo, changed, _ = _replay(g, model, probe, cache)
    return model, topo, changed


def _replay(g: Genome, model: nn.Module, probe: bool, cache: bool
            ) -> tuple[nn.Module, Topology, list[nn.Module], tuple[tuple[str, int], ...]]:
    """``replay``, also returning the depth history that keys the derived topologies."""
    topo = seed_topology(g, probe=probe, cache=cache)
    changed: list[nn.Module] = []
    history: tuple[tuple[str, int], ...] = ()
    for i, e in enumerate(g.edits):
        topo, history = _replay_step(g, i, e, model, topo, history, probe, changed)
    _replay_end(g, model)
    return model, topo, changed, history


def _replay_step(g: Genome, i: int, e: Edit, model: nn.Module, topo: Topology, history: tuple[tuple[str, int], ...],
                 probe: bool, changed: list[nn.Module]) -> tuple[Topology, tuple[tuple[str, int], ...]]:
    """Apply edit ``i`` of ``g`` to ``model`` in place; the topology and depth history after it."""
    site = check_edit(i, e, topo, model, g.seed)
    if e.kind == "width":
        apply_width(model, topo, e.target, e.value, changed)
    elif e.kind == "kernel":
        apply_kernel(model, e.target, e.value, changed)
    elif site is not None and e.value != int(site["count"]):
        plan, removed = apply_depth_edit(model, site, e.value, changed, topo)
        history += ((e.target, e.value),)
        topo = depth_topology(g, probe, history, topo, site, plan, removed)
    return topo, history


def _replay_end(g: Genome, model: nn.Module) -> None:
    if any(e.kind == "depth" for e in g.edits):
        respread_drop_path(model)
    if g.edits:
        fix_metadata(model)


def build(genome: Genome | str | Any, device: str | torch.device | None = None, *, probe: bool = True,
          cache: bool = True) -> nn.Module:
    """Replay a genome on its seed: same genome -> identical state dict. ``device="meta"``: no weights."""
    return _build(as_genome(genome), device, probe, cache, {})


def _build(g: Genome, device: str | torch.device | None, probe: bool, cache: bool,
           holder: dict[str, Topology]) -> nn.Module:
    if g.seed_key and g.seed_key != seed_key(g):
        raise GenomeError(f"the seed '{g.seed}' is not the model this genome was written for "
                          "(its architecture changed since); re-create the genome")
    dev = str(device) if device is not None else "cpu"
    if dev == "meta":
        model, holder["topology"], _ = replay(g, meta_seed(g), probe=probe, cache=cache)
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(g.init_seed)
        model = resolve_seed(g, None)
        model, holder["topology"], changed = replay(g, model, probe=probe, cache=cache)
        torch.manual_seed(g.init_seed + 1)
        initialise(model, changed)
    return model.to(device) if device is not None else model


def build_with_topology(genome: Genome | str | Any, device: str | torch.device | None = None, *,
                        probe: bool = True, cache: bool = True) -> tuple[nn.Module, Topology]:
    """``build`` plus the topology of the built model (for ``space.estimate_macs`` budget checks)."""
    g = as_genome(genome)
    holder: dict[str, Topology] = {}
    model = _build(g, device, probe, cache, holder)
    return model, holder["topology"]


def structure_key(model_or_genome: Any) -> str:
    """Same architecture -> same key, whatever the edit order that reached it (16 hex digits).

    A genome is built on the meta device first (no weights are allocated).
    """
    from torch import nn

    model = model_or_genome
    if not isinstance(model, nn.Module):
        model = build(as_genome(model_or_genome), device="meta")
    return module_key(model)


def load_genome_spec(spec: str, kwargs: dict[str, Any], device: str | None, _file: Any = None) -> Any:
    """A genome JSON file as a model spec (registered with ``zenfx.loading``): its seed with its
    edits replayed (``zenfx.build``)."""
    if kwargs:
        raise UsageError(f"constructor arguments were given with the genome '{spec}': a genome carries its own")
    genome = Genome.load(spec)
    model = build(genome, device=device)
    return LoadedModel(model, os.path.basename(spec), "genome", spec, genome.input_size, {})


__all__ = ["build", "build_with_topology", "check_edit", "load_genome_spec", "replay", "structure_key"]
