"""The search space of a model, read from its graph: channel groups, kernel sites, block runs.

Modules: ``channels`` (the channel-dependency analysis over a traced graph), ``analysis``
(``analyse``: groups, kernels and depth runs with what is frozen and why; ``read_space``),
``blocks`` (the shape-preserving version of a block a run of one grows by), ``depth`` (the topology
after a depth edit, derived without a re-trace), ``probe`` (every free site tried once with
``zenfx.surgery``), ``cache`` (probed topologies on disk). Nothing here knows genomes.

``zenfx.space`` is also callable: ``zenfx.space(model)`` is ``zenfx.genome.space_api.space``, the
user's entry point, which resolves specs and genomes (a layer above this package). That layer
registers it here (``set_entry``), the way spec kinds register with ``zenfx.loading``: this package
never imports the genome code, and a call before anything imported it imports ``zenfx.genome`` by
name first.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

from .analysis import (
    KERNEL_CHOICES,
    WIDTH_RATIOS,
    ChannelGroup,
    DepthSite,
    KernelSite,
    SearchSpace,
    Topology,
    analyse,
    analysis_trace,
    depth_limits,
    estimate_macs,
    group_channels,
    group_limits,
    kernel_sizes,
    meta_copy,
    read_space,
    space_of_values,
    traced_output_shapes,
)

_ENTRY: list[Callable[..., SearchSpace]] = []


def set_entry(fn: Callable[..., SearchSpace]) -> None:
    """Register what ``zenfx.space(...)`` calls (``zenfx.genome.space_api`` does, on import)."""
    _ENTRY[:] = [fn]


class _CallableModule(types.ModuleType):
    """``zenfx.space(model)`` calls the registered user-level ``space`` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> SearchSpace:
        if not _ENTRY:
            importlib.import_module("zenfx.genome")  # registers the entry point
        return _ENTRY[0](*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["KERNEL_CHOICES", "WIDTH_RATIOS", "ChannelGroup", "DepthSite", "KernelSite", "SearchSpace", "Topology",
           "analyse", "analysis_trace", "depth_limits", "estimate_macs", "group_channels", "group_limits",
           "kernel_sizes", "meta_copy", "read_space", "set_entry", "space_of_values", "traced_output_shapes"]
