"""Module surgery with no notion of genomes or search spaces.

Resize a conv / linear / norm along its channels (``layers``: one handler per layer type), set a
channel group's width across the layers that share it (``width``), swap a kernel (``kernel``),
copy or remove blocks of a run (``depth``), initialise what changed as its family would
(``init``), and fix metadata that edits make stale (``fixups``). ``zenfx.space`` decides what may
change (and probes it with these functions); ``zenfx.genome`` replays edits through them.
"""

from __future__ import annotations

from .depth import apply_depth, new_key
from .fixups import fix_metadata, respread_drop_path
from .init import family_of, init_module, initialise
from .kernel import apply_kernel
from .layers import RESIZERS, norm_channels, resize_conv, resize_layer, resize_linear, resize_norm
from .width import GroupLayer, GroupLayers, apply_width, channels_of, resize_to

__all__ = ["RESIZERS", "GroupLayer", "GroupLayers", "apply_depth", "apply_kernel", "apply_width", "channels_of",
           "family_of", "fix_metadata", "init_module", "initialise", "new_key", "norm_channels", "resize_conv",
           "resize_layer", "resize_linear", "resize_norm", "resize_to", "respread_drop_path"]
