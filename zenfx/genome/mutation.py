"""Random valid edits (``mutate``), a uniform shrink (``shrink``), and the space of a genome's model
as it is after its edits (``current_state``), remembered per genome.

Widths are drawn from the reference search's ratios or a per-role grid, kernels from 3/5/7, depths
+-1/+-2 within the run's range; each edit from the space of the model after the previous edits, so
every drawn genome builds.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..space import WIDTH_RATIOS, SearchSpace, Topology, group_channels, kernel_sizes, read_space, space_of_values
from .builder import _replay, _replay_step, replay
from .data import EDIT_KINDS, Edit, Genome, GenomeError, as_genome
from .seeds import forget_depth_topologies, meta_seed, seed_ident, seed_key

_STATES: OrderedDict[tuple[Any, ...], tuple[SearchSpace, dict[str, int], dict[str, int]]] = OrderedDict()
STATE_CACHE_SIZE = 1024


def forget_genomes() -> None:
    """Drop what this process remembers per genome (spaces, depth-edited topologies), keeping the
    seeds' own analysis: a benchmark running several searches in one process starts each one the
    way a fresh search process would (only the seed warm)."""
    _STATES.clear()
    forget_depth_topologies()



def current_state(g: Genome, *, probe: bool = True, cache: bool = True) -> SearchSpace:
    """The search space of the genome's model as it is after its edits (built on meta)."""
    model, topo, _ = replay(g, meta_seed(g, share=True), probe=probe, cache=cache)
    return read_space(topo, model, g.seed, g.input_size)


def _state(g: Genome, probe: bool, cache: bool) -> SearchSpace:
    """``current_state``, remembered per genome (read-only use: mutate and shrink only read it).

    A search draws many children of the same parents (every child of the seed while the population
    is small, then of each member again and again); replaying a parent on a meta copy of the seed
    costs ~10 ms of the driver's time per draw, a dict lookup does not. A width or kernel edit on a
    remembered genome is derived from it without a replay (``_derived``)."""
    key = _state_key(g, g.edits, probe, cache)
    hit = _STATES.get(key)
    if hit is None:
        hit = _derived(g, probe, cache) or _replayed(g, probe, cache)
        _STATES[key] = hit
        while len(_STATES) > STATE_CACHE_SIZE:
            _STATES.popitem(last=False)
    else:
        _STATES.move_to_end(key)
    return hit[0]


def _state_key(g: Genome, edits: Sequence[Edit], probe: bool, cache: bool) -> tuple[Any, ...]:
    return (seed_ident(g), g.seed_key, probe, cache, tuple((e.kind, e.target, e.value) for e in edits))


def _replayed(g: Genome, probe: bool, cache: bool) -> tuple[SearchSpace, dict[str, int], dict[str, int]]:
    model, topo, _ = replay(g, meta_seed(g, share=True), probe=probe, cache=cache)
    chans, kernels = group_channels(topo, model), kernel_sizes(topo, model)
    return space_of_values(topo, chans, kernels, g.seed, g.input_size), chans, kernels


def _derived(g: Genome, probe: bool, cache: bool) -> tuple[SearchSpace, dict[str, int], dict[str, int]] | None:
    """The state after a last width or kernel edit, from the remembered state before it: a width edit
    resizes exactly its group's layers and a kernel edit one conv, with the topology unchanged, so
    the space is the parent's values with that one value replaced (tested equal to a replay). None
    (replay instead) for depth edits, an unknown parent, or an edit the parent's space does not
    allow (the replay then raises the usual error)."""
    if not g.edits or g.edits[-1].kind not in ("width", "kernel"):
        return None
    parent = _STATES.get(_state_key(g, g.edits[:-1], probe, cache))
    if parent is None:
        return None
    return _next_values(parent, g.edits[-1], g)


def _next_values(parent: tuple[SearchSpace, dict[str, int], dict[str, int]], e: Edit, g: Genome
                 ) -> tuple[SearchSpace, dict[str, int], dict[str, int]] | None:
    """``_derived`` from the parent's remembered state and the width or kernel edit ``e``."""
    sp, chans, kernels = parent
    if e.kind == "width":
        grp = sp.group(e.target)
        if grp is None or not grp.free or e.value % grp.step or not grp.min <= e.value <= grp.max:
            return None
        chans = {**chans, e.target: int(e.value)}
    else:
        site = sp.kernel(e.target)
        if site is None or not site.free or e.value not in site.choices:
            return None
        kernels = {**kernels, e.target: int(e.value)}
    return space_of_values(sp.topology, chans, kernels, g.seed, g.input_size), chans, kernels


# --------------------------------------------------------------------------- mutate / shrink


def _width_values(grp: Any, width_choices: dict[str, list[int]] | None) -> list[int]:
    grid = None
    if width_choices:
        grid = width_choices.get(grp.id, width_choices.get(grp.role))
    if grid is not None:
        vals = {int(v) for v in grid if v % grp.step == 0 and grp.min <= v <= grp.max}
    else:
        vals = {min(grp.max, max(grp.min, int(round(grp.channels * r / grp.step)) * grp.step)) for r in WIDTH_RATIOS}
    vals.discard(grp.channels)
    return sorted(vals)


def edit_options(sp: SearchSpace, kinds: Sequence[str], width_choices: dict[str, list[int]] | None = None
                 ) -> dict[str, list[tuple[str, list[int]]]]:
    """Every valid single edit of the space, per kind: (target, values)."""
    opts: dict[str, list[tuple[str, list[int]]]] = {}
    if "width" in kinds:
        opts["width"] = [(g.id, v) for g in sp.groups if g.free and (v := _width_values(g, width_choices))]
    if "kernel" in kinds:
        opts["kernel"] = [(k.path, [c for c in k.choices if c != k.kernel]) for k in sp.kernels if k.free]
    if "depth" in kinds:
        steps = (-2, -1, 1, 2)
        opts["depth"] = [(b.path, v) for b in sp.blocks if b.free and
                         (v := [b.count + d for d in steps if b.min <= b.count + d <= b.max])]
    return {k: v for k, v in opts.items() if v}


def _kinds(kinds: Sequence[str] | str) -> tuple[str, ...]:
    ks = tuple(k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip())
    bad = [k for k in ks if k not in EDIT_KINDS]
    if bad or not ks:
        raise GenomeError(f"edit kinds must be among {', '.join(EDIT_KINDS)}, got {', '.join(ks) or 'none'}")
    return ks


def with_seed_key(g: Genome) -> Genome:
    if g.seed_key:
        return g
    out = g.with_edits(list(g.edits))
    out.seed_key = seed_key(g)
    return out


def mutate(genome: Genome | str, rng: random.Random, edits: int = 1, *,
           kinds: Sequence[str] | str = EDIT_KINDS, width_choices: dict[str, list[int]] | None = None,
           probe: bool = True, cache: bool = True, kind_weights: dict[str, float] | None = None) -> Genome:
    """A new genome with ``edits`` random edits appended, each valid for the model as it is then.
    Each edit's kind is uniform over the kinds with options, or drawn with ``kind_weights`` (a kind
    not named weighs 1), then its target and value uniformly."""
    ks = _kinds(kinds)
    g = with_seed_key(as_genome(genome))
    if edits <= 2:  # what a search draws: every state remembered, so later children derive from it
        for _ in range(edits):
            g = g.child(_draw(_state(g, probe, cache), rng, ks, width_choices, g, kind_weights))
        return g
    return _walk(g, rng, edits, ks, width_choices, probe, cache, kind_weights)


def _draw(sp: SearchSpace, rng: random.Random, ks: tuple[str, ...], width_choices: dict[str, list[int]] | None,
          g: Genome, kind_weights: dict[str, float] | None = None) -> Edit:
    opts = edit_options(sp, ks, width_choices)
    if not opts:
        raise GenomeError(f"{g.seed} has nothing free to mutate for kinds {', '.join(ks)}")
    names = sorted(opts)
    if kind_weights:
        kind = rng.choices(names, weights=[float(kind_weights.get(k, 1.0)) for k in names])[0]
    else:
        kind = rng.choice(names)
    target, values = rng.choice(opts[kind])
    return Edit(kind, target, rng.choice(values))


def _walk(g: Genome, rng: random.Random, edits: int, ks: tuple[str, ...],
          width_choices: dict[str, list[int]] | None, probe: bool, cache: bool,
          kind_weights: dict[str, float] | None = None) -> Genome:
    """Many edits at a flat cost each: the state is carried forward instead of looked up by the
    whole (growing) edit list, and once a depth edit is drawn a meta model is carried too, so each
    edit is applied once rather than every edit replayed again. Draws exactly what ``edits``
    one-at-a-time draws give (tests/test_sweep_search.py)."""
    _state(g, probe, cache)
    held = _STATES[_state_key(g, g.edits, probe, cache)]
    walk: tuple[nn.Module, Topology, tuple[tuple[str, int], ...]] | None = None
    drawn = list(g.edits)  # the genome is made once at the end: Genome.child copies every edit
    for _ in range(edits):
        e = _draw(held[0], rng, ks, width_choices, g, kind_weights)
        if e.kind == "depth" and walk is None:
            model, topo, _, history = _replay(g.with_edits(drawn), meta_seed(g, share=True), probe, cache)
            walk = (model, topo, history)
        drawn.append(e)
        if walk is not None:
            topo, history = _replay_step(g, len(drawn) - 1, e, walk[0], walk[1], walk[2], probe, [])
            walk = (walk[0], topo, history)
        nxt = _next_values(held, e, g) if e.kind != "depth" else None
        if nxt is None:
            assert walk is not None
            chans, kernels = group_channels(walk[1], walk[0]), kernel_sizes(walk[1], walk[0])
            nxt = space_of_values(walk[1], chans, kernels, g.seed, g.input_size), chans, kernels
        held = nxt
    g = g.with_edits(drawn)
    _STATES[_state_key(g, g.edits, probe, cache)] = held
    while len(_STATES) > STATE_CACHE_SIZE:
        _STATES.popitem(last=False)
    return g


def shrink(genome: Genome | str, factor: float, *, depth: bool = False, probe: bool = True,
           cache: bool = True) -> Genome:
    """Every free group times ``factor`` (rounded to its step, clamped); with ``depth`` every free
    block run too (at least one block). A cheap way to bring a seed under a budget."""
    if not 0 < factor:
        raise GenomeError(f"shrink factor must be positive, got {factor}")
    g = with_seed_key(as_genome(genome))
    if depth:
        sp = _state(g, probe, cache)
        for b in reversed([b for b in sp.blocks if b.free]):
            n = min(b.max, max(b.min, int(round(b.count * factor))))
            if n != b.count:
                g = g.child(Edit("depth", b.path, n))
    sp = _state(g, probe, cache)
    for grp in sp.groups:
        if grp.free:
            c = min(grp.max, max(grp.min, int(round(grp.channels * factor / grp.step)) * grp.step))
            if c != grp.channels:
                g = g.child(Edit("width", grp.id, c))
    return g


__all__ = ["STATE_CACHE_SIZE", "current_state", "edit_options", "forget_genomes", "mutate", "shrink", "with_seed_key"]
