"""Resolve what a user types into an ``nn.Module`` and the input size it expects.

One resolver serves the API and every CLI command, so ``zenfx score X`` and ``zenfx report X``
always mean the same network. Pretrained weights are never requested: zenfx runs without network
access, and zero-shot proxies re-initialise weights anyway.

Modules, one spec kind or concern each: ``options`` (``-k`` arguments, input size), ``construct``
(calling a constructor, on meta), ``hub`` (torchvision / timm names), ``files`` (a user's file,
named by content), ``python`` (import paths), ``adapters``, and ``resolve`` (the registry of spec
kinds; genome JSON and ``zoo:`` register there by module path, so loading imports neither).
"""

from __future__ import annotations

from .adapters import PickOutput, pick_output
from .construct import LoadedModel, build_module, empty_weights
from .files import (
    FileRef,
    SeedFileChangedError,
    UserSource,
    file_digest,
    file_ref_of,
    register_source,
    registered_source,
    split_file_spec,
    user_module_name,
    user_source,
)
from .hub import guess_input_size, timm_names, torchvision_names
from .options import DEFAULT_INPUT_SIZE, InputSize, parse_input_size, parse_kwargs
from .resolve import KINDS, SpecKind, load_model, register_kind, resolve_model

__all__ = ["DEFAULT_INPUT_SIZE", "KINDS", "FileRef", "InputSize", "LoadedModel", "PickOutput", "SeedFileChangedError",
           "SpecKind", "UserSource", "build_module", "empty_weights", "file_digest", "file_ref_of",
           "guess_input_size", "load_model", "parse_input_size", "parse_kwargs", "pick_output", "register_kind",
           "register_source", "registered_source", "resolve_model", "split_file_spec", "timm_names",
           "torchvision_names", "user_module_name", "user_source"]
