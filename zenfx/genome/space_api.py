"""``zenfx.space(model)``: the search space of a spec, a module or a genome, as a user asks for it.

It sits above the genome package because a spec's space is its seed's (resolved and probed once
per process, cached on disk) and a genome's is its seed's after the edits; ``zenfx.space`` (the
package, callable) hands calls here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import UsageError
from ..loading import guess_input_size, resolve_model
from ..space import SearchSpace, analyse, meta_copy, read_space, set_entry
from ..space.probe import probe_topology
from .data import Genome, as_genome, is_genome_spec
from .mutation import current_state
from .seeds import meta_seed, seed_topology


def space(model: Any, kwargs: dict[str, Any] | None = None, input_size: Sequence[int] | None = None, *,
          probe: bool = True, cache: bool = True) -> SearchSpace:
    """The search space of a model spec, an ``nn.Module`` or a genome (object or JSON path).

    Specs and genomes are analysed on the meta device; a spec's analysis (probed) is cached on
    disk, keyed by spec, kwargs, input size and zenfx version, so a search pays for it once.
    """
    if isinstance(model, Genome) or is_genome_spec(model):
        if kwargs:
            raise UsageError("constructor arguments were given with a genome: the genome carries its own")
        g = as_genome(model)
        if input_size is not None and tuple(input_size) != g.input_size:
            g = g.with_edits(list(g.edits))
            g.input_size = tuple(int(s) for s in input_size)  # type: ignore[assignment]
        return current_state(g, probe=probe, cache=cache)
    if isinstance(model, nn.Module):
        size = tuple(int(s) for s in (input_size or guess_input_size(model, "")))
        start = time.perf_counter()
        topo = analyse(model, size)
        if probe:
            probe_topology(topo, meta_copy(model), size)
        topo.probe.setdefault("seconds", round(time.perf_counter() - start, 3))
        return read_space(topo, model, type(model).__name__, size)
    g = Genome(str(model), dict(kwargs or {}), tuple(input_size) if input_size else _default_size(str(model), kwargs))  # type: ignore[arg-type]
    topo = seed_topology(g, probe=probe, cache=cache)
    seed = meta_seed(g, share=True)
    return read_space(topo, seed, str(model), g.input_size)


def _default_size(spec: str, kwargs: dict[str, Any] | None) -> tuple[int, int, int]:
    return tuple(resolve_model(spec, dict(kwargs or {}), device="meta").default_input_size)  # type: ignore[return-value]


set_entry(space)

__all__ = ["space"]
