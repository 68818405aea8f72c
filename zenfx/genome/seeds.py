"""A genome's seed, once per process: its meta copy, structure key, and analysed (probed) topology.

Everything a genome replays starts from its seed; resolving and analysing it costs seconds for an
ImageNet model, so it is done once per process and seed (and the probed topology once per machine,
in the disk cache of ``zenfx.space.cache``). Topologies after depth edits are derived from the
ones before (``zenfx.space.depth.derive``) and remembered by depth history.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from typing import Any

from torch import nn

from ..loading import resolve_model
from ..space import Topology, analyse, meta_copy
from ..space import cache as space_cache
from ..space.depth import derive
from ..space.probe import probe_topology
from .data import Genome, GenomeError, is_genome_spec
from .key import module_key

_META_SEEDS: OrderedDict[str, nn.Module] = OrderedDict()
_SEED_TOPOS: dict[tuple[str, bool], Topology] = {}
_DEPTH_TOPOS: dict[tuple[str, bool, tuple[tuple[str, int], ...]], Topology] = {}
_SEED_KEYS: dict[str, str] = {}


def forget_depth_topologies() -> None:
    _DEPTH_TOPOS.clear()


def seed_ident(g: Genome) -> str:
    """The seed's identity within this process: spec, kwargs, input size and, for a file seed, the
    file's content (two files spelled alike are two seeds; an edited file is another seed)."""
    content = g.seed_file.sha256 if g.seed_file is not None else None
    return json.dumps([g.seed, g.kwargs, list(g.input_size), content], sort_keys=True, default=str)


def resolve_seed(g: Genome, device: str | None) -> nn.Module:
    """The seed model of ``g``, built by the loading registry (a file seed pinned to its content)."""
    if is_genome_spec(g.seed):
        raise GenomeError(f"a genome's seed must be a model spec, not another genome ('{g.seed}')")
    ref = g.seed_file.ref() if g.seed_file is not None else None
    return resolve_model(g.seed, dict(g.kwargs), device=device, file=ref).module


def meta_seed(g: Genome, *, share: bool = False) -> nn.Module:
    """A fresh meta-device copy of the seed model (resolved once per process and seed).

    ``share=True`` (internal, read-mostly copies such as the ones ``mutate`` inspects) shares the
    meta parameter objects with the cached seed: edits only ever *replace* parameters, so sharing
    is safe there and skips most of the deep-copy cost. Models handed to callers never share.
    """
    ident = seed_ident(g)
    if ident not in _META_SEEDS:
        model = resolve_seed(g, "meta")
        if not all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()]):
            model = meta_copy(model)
        _META_SEEDS[ident] = model
        while len(_META_SEEDS) > 4:
            _META_SEEDS.popitem(last=False)
    _META_SEEDS.move_to_end(ident)
    cached = _META_SEEDS[ident]
    if not share:
        return copy.deepcopy(cached)
    memo: dict[int, Any] = {id(t): t for t in [*cached.parameters(), *cached.buffers()]}
    return copy.deepcopy(cached, memo)


def seed_key(g: Genome) -> str:
    ident = seed_ident(g)
    if ident not in _SEED_KEYS:
        _SEED_KEYS[ident] = module_key(meta_seed(g))
    return _SEED_KEYS[ident]


def seed_topology(g: Genome, *, probe: bool = True, cache: bool = True) -> Topology:
    """The seed's topology (probed when ``probe``; on disk under the cache dir when ``cache``)."""
    ident = seed_ident(g)
    topo = _SEED_TOPOS.get((ident, probe))
    if topo is None:
        model = meta_seed(g)
        key = space_cache.cache_key(g, seed_key(g), probe) if cache else None
        topo = space_cache.load(key) if key else None
        if topo is None:
            topo = analyse(model, g.input_size)
            if probe:
                probe_topology(topo, copy.deepcopy(model), g.input_size)
            if key:
                space_cache.save(key, topo)
        _SEED_TOPOS[(ident, probe)] = topo
    return topo


def seed_space_document(g: Genome) -> dict[str, Any]:
    """The seed's probed topology as JSON, with its cache key: what a search ships to its workers so
    a worker on another machine (no disk cache there) need not probe the seed again."""
    return {"key": space_cache.cache_key(g, seed_key(g), True), "topology": seed_topology(g).to_dict()}


def adopt_seed_space(g: Genome, doc: dict[str, Any] | None) -> bool:
    """Use a shipped ``seed_space_document`` as this process's probed seed topology (and its disk
    cache), if it was made for the same seed, zenfx version and analysis code (the cache key says
    so); otherwise ignore it and probe as usual. Returns whether it was adopted."""
    if not doc or (seed_ident(g), True) in _SEED_TOPOS:
        return False
    key = space_cache.cache_key(g, seed_key(g), True)
    if doc.get("key") != key:
        return False
    topo = Topology.from_dict(doc["topology"])
    _SEED_TOPOS[(seed_ident(g), True)] = topo
    if space_cache.load(key) is None:
        space_cache.save(key, topo)
    return True


def depth_topology(g: Genome, probe: bool, history: tuple[tuple[str, int], ...], prev: Topology,
                    site: dict[str, Any], plan: list[tuple[str, str, str]], removed: list[str]) -> Topology:
    """The topology after a depth edit: derived from the one before (``space_depth``), cached by history."""
    key = (seed_ident(g), probe, history)
    topo = _DEPTH_TOPOS.get(key)
    if topo is None:
        topo = derive(prev, site, plan, removed)
        if len(_DEPTH_TOPOS) > 4096:
            _DEPTH_TOPOS.pop(next(iter(_DEPTH_TOPOS)))
        _DEPTH_TOPOS[key] = topo
    return topo


__all__ = ["adopt_seed_space", "depth_topology", "forget_depth_topologies", "meta_seed", "resolve_seed", "seed_ident",
           "seed_key", "seed_space_document", "seed_topology"]
