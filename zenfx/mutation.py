"""Edits on the ORIGINAL model: replay a genome (``build``), draw random edits (``mutate``), ``shrink``.

A build resolves the seed spec under ``torch.manual_seed(genome.init_seed)``, deep-copies nothing
it does not need to, and replays the edits in order. A changed layer keeps its own class and every
attribute it had (timm's ``Conv2dSame`` and ``BatchNormAct2d`` stay themselves, with their
activation); only its channel/kernel attributes and tensors change. Changed layers (and every
layer of a block copied by a depth edit) are initialised at the end, in module order, the way
their family initialises them, so replaying a genome twice gives an identical state dict.

Each edit is checked against the space of the model *as it is at that point*: the topology of the
seed (cached) or, after a depth edit, of the re-analysed model (cached in memory by depth history).
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .genome import EDIT_KINDS, Edit, Genome, GenomeError, as_genome, structure_key
from .space import (
    KERNEL_CHOICES,
    WIDTH_RATIOS,
    SearchSpace,
    Topology,
    analyse,
    depth_limits,
    group_channels,
    group_limits,
    kernel_sizes,
    read_space,
    space_of_values,
)
from .space_graph import OPAQUE_PREFIX, Layer

_META_SEEDS: OrderedDict[str, nn.Module] = OrderedDict()
_SEED_TOPOS: dict[tuple[str, bool], Topology] = {}
_DEPTH_TOPOS: dict[tuple[str, bool, tuple[tuple[str, int], ...]], Topology] = {}
_SEED_KEYS: dict[str, str] = {}
_STATES: OrderedDict[tuple[Any, ...], tuple[SearchSpace, dict[str, int], dict[str, int]]] = OrderedDict()
STATE_CACHE_SIZE = 1024


# --------------------------------------------------------------------------- seeds


def forget_genomes() -> None:
    """Drop what this process remembers per genome (spaces, depth-edited topologies), keeping the
    seeds' own analysis: a benchmark running several searches in one process starts each one the
    way a fresh search process would (only the seed warm)."""
    _STATES.clear()
    _DEPTH_TOPOS.clear()


def seed_ident(g: Genome) -> str:
    """The seed's identity within this process: spec, kwargs, input size and, for a file seed, the
    file's content (two files spelled alike are two seeds; an edited file is another seed)."""
    content = g.seed_file.sha256 if g.seed_file is not None else None
    return json.dumps([g.seed, g.kwargs, list(g.input_size), content], sort_keys=True, default=str)


def _resolve(g: Genome, device: str | None) -> nn.Module:
    from .genome import is_genome_spec
    from .loading import resolve_model

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
        model = _resolve(g, "meta")
        if not all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()]):
            from .space import meta_copy

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
        _SEED_KEYS[ident] = structure_key(meta_seed(g))
    return _SEED_KEYS[ident]


def seed_topology(g: Genome, *, probe: bool = True, cache: bool = True) -> Topology:
    """The seed's topology (probed when ``probe``; on disk under the cache dir when ``cache``)."""
    ident = seed_ident(g)
    topo = _SEED_TOPOS.get((ident, probe))
    if topo is None:
        model = meta_seed(g)
        from . import space_cache

        key = space_cache.cache_key(g, seed_key(g), probe) if cache else None
        topo = space_cache.load(key) if key else None
        if topo is None:
            topo = analyse(model, g.input_size)
            if probe:
                from .space_probe import probe_topology

                probe_topology(topo, copy.deepcopy(model), g.input_size)
            if key:
                space_cache.save(key, topo)
        _SEED_TOPOS[(ident, probe)] = topo
    return topo


def seed_space_document(g: Genome) -> dict[str, Any]:
    """The seed's probed topology as JSON, with its cache key: what a search ships to its workers so
    a worker on another machine (no disk cache there) need not probe the seed again."""
    from . import space_cache

    return {"key": space_cache.cache_key(g, seed_key(g), True), "topology": seed_topology(g).to_dict()}


def adopt_seed_space(g: Genome, doc: dict[str, Any] | None) -> bool:
    """Use a shipped ``seed_space_document`` as this process's probed seed topology (and its disk
    cache), if it was made for the same seed, zenfx version and analysis code (the cache key says
    so); otherwise ignore it and probe as usual. Returns whether it was adopted."""
    from . import space_cache

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


def _depth_topology(g: Genome, probe: bool, history: tuple[tuple[str, int], ...], prev: Topology,
                    site: dict[str, Any], plan: list[tuple[str, str, str]], removed: list[str]) -> Topology:
    """The topology after a depth edit: derived from the one before (``space_depth``), cached by history."""
    key = (seed_ident(g), probe, history)
    topo = _DEPTH_TOPOS.get(key)
    if topo is None:
        from .space_depth import derive

        topo = derive(prev, site, plan, removed)
        if len(_DEPTH_TOPOS) > 4096:
            _DEPTH_TOPOS.pop(next(iter(_DEPTH_TOPOS)))
        _DEPTH_TOPOS[key] = topo
    return topo


# --------------------------------------------------------------------------- layer surgery


def _like(t: torch.Tensor | None, shape: Sequence[int]) -> torch.Tensor:
    assert t is not None
    return torch.empty(tuple(shape), dtype=t.dtype, device=t.device)


def _param(m: nn.Module, name: str, shape: Sequence[int]) -> None:
    old = getattr(m, name, None)
    if isinstance(old, nn.Parameter):
        setattr(m, name, nn.Parameter(_like(old, shape), requires_grad=old.requires_grad))


def _buffer(m: nn.Module, name: str, shape: Sequence[int], fill: float | None = None) -> None:
    old = m._buffers.get(name)
    if old is not None:
        new = _like(old, shape)
        if fill is not None and new.device.type != "meta":
            new.fill_(fill)
        m._buffers[name] = new


def resize_conv(m: nn.Module, cin: int, cout: int, groups: int) -> None:
    m.in_channels, m.out_channels, m.groups = cin, cout, groups  # type: ignore[assignment]
    _param(m, "weight", (cout, cin // groups, *m.kernel_size))  # type: ignore[misc]
    _param(m, "bias", (cout,))


def resize_linear(m: nn.Module, cin: int, cout: int) -> None:
    m.in_features, m.out_features = cin, cout  # type: ignore[assignment]
    _param(m, "weight", (cout, cin))
    _param(m, "bias", (cout,))


def resize_norm(m: nn.Module, c: int) -> None:
    if isinstance(m, nn.GroupNorm):
        m.num_channels = c
    elif isinstance(m, nn.LayerNorm):
        m.normalized_shape = (c,)
    else:
        m.num_features = c  # type: ignore[assignment]
        _buffer(m, "running_mean", (c,), 0.0)
        _buffer(m, "running_var", (c,), 1.0)
    _param(m, "weight", (c,))
    _param(m, "bias", (c,))


def _channels_of(topo: Topology, model: nn.Module, gid: str) -> int:
    for lay in topo.layers_of(gid):
        m = model.get_submodule(lay.path)
        if lay.out_group == gid:
            return int(m.out_channels if lay.kind == "conv" else m.out_features)  # type: ignore[arg-type]
        for g, s in lay.in_parts:
            if g == gid and len(lay.in_parts) == 1:
                if lay.kind == "conv":
                    return int(m.in_channels) // s  # type: ignore[arg-type]
                if lay.kind == "linear":
                    return int(m.in_features) // s  # type: ignore[arg-type]
                from .space import norm_channels

                return norm_channels(m) // s
    return 0


def apply_width(model: nn.Module, topo: Topology, gid: str, value: int, changed: list[nn.Module]) -> None:
    """Set group ``gid`` to ``value`` channels: every layer reading or writing it is resized."""
    layers = topo.layers_of(gid)
    wanted: dict[str, int] = {gid: value}
    for lay in layers:
        for g in {lay.out_group, *(p for p, _ in lay.in_parts)}:
            if g is not None and g not in wanted:
                wanted[g] = _channels_of(topo, model, g)
    for lay in layers:
        _resize(model.get_submodule(lay.path), lay, wanted)
        changed.append(model.get_submodule(lay.path))


def _resize(m: nn.Module, lay: Layer, wanted: dict[str, int]) -> None:
    cin = sum(wanted[g] * s for g, s in lay.in_parts)
    if lay.kind == "conv":
        cout = wanted[lay.out_group]  # type: ignore[index]
        groups = cout // lay.group_width if lay.group_width else m.groups  # type: ignore[operator]
        resize_conv(m, cin, cout, groups)  # type: ignore[arg-type]
    elif lay.kind == "linear":
        resize_linear(m, cin, wanted[lay.out_group])  # type: ignore[index]
    else:
        resize_norm(m, cin)


def apply_kernel(model: nn.Module, path: str, k: int, changed: list[nn.Module]) -> None:
    """Kernel k with padding adjusted so every output shape stays (static or timm's dynamic 'same')."""
    m = model.get_submodule(path)
    nd = len(m.kernel_size)  # type: ignore[arg-type]
    if not isinstance(m.padding, str) and any(p != 0 for p in m.padding):  # type: ignore[union-attr]
        m.padding = tuple(d * (k - 1) // 2 for d in m.dilation)  # type: ignore[union-attr, assignment]
        m._reversed_padding_repeated_twice = [p for p in reversed(m.padding) for _ in range(2)]  # type: ignore[union-attr]
    elif isinstance(m.padding, str):
        m._reversed_padding_repeated_twice = [  # type: ignore[assignment]
            v for d in reversed(m.dilation) for v in (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)]  # type: ignore[union-attr]
    m.kernel_size = (k,) * nd
    _param(m, "weight", (m.out_channels, m.in_channels // m.groups, *m.kernel_size))  # type: ignore[operator, misc]
    changed.append(m)


_TRAILING = re.compile(r"^(.*?)(\d+)$")


def _new_key(last: str, taken: set[str]) -> str:
    match = _TRAILING.match(last)
    stem, num = (match.group(1), int(match.group(2))) if match else (f"{last}_", 0)
    while f"{stem}{num}" in taken:
        num += 1
    return f"{stem}{num}"


def apply_depth(model: nn.Module, site: dict[str, Any], value: int, changed: list[nn.Module],
                topo: Topology | None = None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Add copies of the run's last block after it, or remove blocks from the run's end.

    A run down to its one shape-changing first block grows by a *made* block instead: the
    shape-preserving version of that block (``space_depth.make_block``, which needs ``topo``).
    Returns the plan ((new key, "kept" | "copy" | "make", old key) per child, in order) and the
    removed keys, from which ``space_depth.derive`` follows the topology without re-tracing."""
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
            from .space_depth import make_block

            if topo is None or not site.get("make"):
                raise GenomeError(f"block run '{site['path']}': its one block changes the shape and "
                                  "no shape-preserving version of it can be made")
            prefix = f"{site['container']}." if site["container"] else ""
            template, kind = make_block(model, topo, prefix + items[s][0], site["make"]), "make"
        for _ in range(value - n):
            block = copy.deepcopy(template)
            key = _new_key(new[-1][0] if new else items[s + n - 1][0], taken)
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


# --------------------------------------------------------------------------- initialisation


def _family(model: nn.Module) -> str:
    mod = type(model).__module__
    for key, fam in (("torchvision.models.resnet", "kaiming_relu"), ("timm.models.resnet", "kaiming_relu"),
                     ("torchvision.models.mobilenet", "mobilenet"), ("torchvision.models.efficientnet", "tv_effnet"),
                     ("torchvision.models.regnet", "regnet"), ("timm.models.efficientnet", "goog"),
                     ("timm.models.mobilenetv3", "goog"), ("timm.models.regnet", "regnet")):
        if mod.startswith(key):
            return fam
    return "default"


def init_module(m: nn.Module, family: str) -> None:
    """Initialise one changed layer as its family's own init code does, else PyTorch's default."""
    if hasattr(m, "reset_parameters"):
        m.reset_parameters()
    if family == "default":
        return
    if isinstance(m, nn.modules.conv._ConvNd):
        if family in ("regnet", "goog"):
            fan_out = math.prod(m.kernel_size) * m.out_channels // (m.groups if family == "goog" else 1)
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        else:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
        if m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear) and family != "kaiming_relu":
        if family in ("mobilenet", "regnet"):
            nn.init.normal_(m.weight, 0, 0.01)
        else:
            r = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -r, r)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _initialise(model: nn.Module, changed: Iterable[nn.Module]) -> None:
    ids = {id(m) for m in changed}
    family = _family(model)
    for _, m in model.named_modules():
        if id(m) in ids:
            init_module(m, family)


# --------------------------------------------------------------------------- replay


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
        meta = topo.groups.get(e.target)
        if meta is None or e.target.startswith(OPAQUE_PREFIX):
            named = [g for g in topo.groups if not g.startswith(OPAQUE_PREFIX)]
            raise GenomeError(f"{where}: {seed} has no channel group '{e.target}'{_close(e.target, named)}")
        if meta["reasons"]:
            raise GenomeError(f"{where}: group '{e.target}' is frozen: {meta['reasons'][0]}")
        c = _channels_of(topo, model, e.target)
        step, lo, hi = group_limits(meta, c)
        if e.value % step or not lo <= e.value <= hi:
            raise GenomeError(f"{where}: width must be a multiple of {step} in [{lo}, {hi}] (group has {c})")
        return None
    if e.kind == "kernel":
        if e.target not in topo.kernels:
            raise GenomeError(f"{where}: {seed} has no kernel site '{e.target}'{_close(e.target, topo.kernels)}")
        if topo.kernels[e.target]:
            raise GenomeError(f"{where}: kernel of '{e.target}' is frozen: {topo.kernels[e.target][0]}")
        if e.value not in KERNEL_CHOICES:
            raise GenomeError(f"{where}: kernel must be one of {', '.join(map(str, KERNEL_CHOICES))}")
        return None
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
        plan, removed = apply_depth(model, site, e.value, changed, topo)
        history += ((e.target, e.value),)
        topo = _depth_topology(g, probe, history, topo, site, plan, removed)
    return topo, history


def _replay_end(g: Genome, model: nn.Module) -> None:
    if any(e.kind == "depth" for e in g.edits):
        from .space_fixups import respread_drop_path

        respread_drop_path(model)
    if g.edits:
        from .space_fixups import fix_metadata

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
        model = _resolve(g, None)
        model, holder["topology"], changed = replay(g, model, probe=probe, cache=cache)
        torch.manual_seed(g.init_seed + 1)
        _initialise(model, changed)
    return model.to(device) if device is not None else model


def build_with_topology(genome: Genome | str | Any, device: str | torch.device | None = None, *,
                        probe: bool = True, cache: bool = True) -> tuple[nn.Module, Topology]:
    """``build`` plus the topology of the built model (for ``space.estimate_macs`` budget checks)."""
    g = as_genome(genome)
    holder: dict[str, Topology] = {}
    model = _build(g, device, probe, cache, holder)
    return model, holder["topology"]


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
