"""Genomes: a seed model plus ordered edits, as JSON that replays to the same network.

Modules: ``data`` (Genome / Edit / SeedFile and their JSON), ``key`` (a module's structure key),
``seeds`` (the seed resolved, keyed and analysed once per process), ``builder`` (``build``: the
seed plus its edits through ``zenfx.surgery``), ``mutation`` (random valid edits, shrink, the space
after a genome's edits), ``space_api`` (``zenfx.space(...)``).
"""

from __future__ import annotations

from .builder import build, build_with_topology, check_edit, load_genome_spec, replay, structure_key
from .data import (
    EDIT_KINDS,
    FORMAT,
    FORMAT_VERSION,
    Edit,
    Genome,
    GenomeError,
    SeedFile,
    as_genome,
    is_genome_spec,
)
from .key import describe, module_key
from .mutation import current_state, edit_options, forget_genomes, mutate, shrink, with_seed_key
from .seeds import adopt_seed_space, meta_seed, seed_ident, seed_key, seed_space_document, seed_topology
from .space_api import space

__all__ = ["EDIT_KINDS", "FORMAT", "FORMAT_VERSION", "Edit", "Genome", "GenomeError", "SeedFile", "adopt_seed_space",
           "as_genome", "build", "build_with_topology", "check_edit", "current_state", "describe", "edit_options",
           "forget_genomes", "is_genome_spec", "load_genome_spec", "meta_seed", "module_key", "mutate", "replay",
           "seed_ident", "seed_key", "seed_space_document", "seed_topology", "shrink", "space", "structure_key",
           "with_seed_key"]
