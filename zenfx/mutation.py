"""Moved (issue 19): ``zenfx.mutation`` is now ``zenfx.genome`` (build, mutate, shrink, the seed's
cache) and ``zenfx.surgery`` (the layer edits). This module keeps the old import path working."""

from __future__ import annotations

from .genome import (  # noqa: F401
    adopt_seed_space,
    build,
    build_with_topology,
    check_edit,
    current_state,
    edit_options,
    forget_genomes,
    meta_seed,
    mutate,
    replay,
    seed_ident,
    seed_key,
    seed_space_document,
    seed_topology,
    shrink,
    with_seed_key,
)
from .genome.mutation import _state  # noqa: F401
from .surgery import (  # noqa: F401
    apply_depth,
    apply_kernel,
    apply_width,
    init_module,
    resize_conv,
    resize_linear,
    resize_norm,
)
