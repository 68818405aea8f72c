"""One resolver for every spec: a registry of spec kinds, tried in order.

Each kind is a ``matches(spec)`` test and a resolver ``(spec, kwargs, device, file) -> LoadedModel``.
The kinds that live *above* loading (a genome JSON replays edits with ``zenfx.genome``; ``zoo:NAME``
comes from ``zenfx.zoo``) register by module path and are imported only when a spec of theirs
arrives, so loading itself imports no genome or zoo code (the import contracts in pyproject keep it
so) and ``register_kind`` lets a plug-in add its own kind the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import UnknownModelError, UsageError
from .construct import LoadedModel
from .files import FileRef, load_file, looks_like_file
from .hub import guess_input_size, load_timm, load_torchvision, timm_names, torchvision_names, unknown
from .options import refuse_pretrained
from .python import load_python

Resolver = Callable[[str, dict[str, Any], "str | None", "FileRef | None"], LoadedModel]


@dataclass(frozen=True)
class SpecKind:
    """A kind of spec: which strings it claims and who builds them (a callable or "module:function")."""

    name: str
    matches: Callable[[str], bool]
    resolver: Resolver | str

    def resolve(self, spec: str, kwargs: dict[str, Any], device: str | None, file: FileRef | None) -> LoadedModel:
        fn = self.resolver
        if isinstance(fn, str):
            module, attr = fn.split(":")
            fn = getattr(importlib.import_module(module), attr)
        return fn(spec, kwargs, device, file)


def _file(spec: str, kwargs: dict[str, Any], device: str | None, file: FileRef | None) -> LoadedModel:
    if ":" not in spec:
        raise UsageError(f"'{spec}' names a file: add ':callable' (e.g. {spec}:build)")
    path, attr = spec.rsplit(":", 1)
    return load_file(path, attr, kwargs, device, spec, file)


def _registry_name(spec: str, kwargs: dict[str, Any], device: str | None, _file: FileRef | None) -> LoadedModel:
    """A bare name: torchvision, then timm; a name in both is ambiguous."""
    in_tv = spec in torchvision_names()
    in_timm = spec in timm_names()
    if in_tv and in_timm:
        raise UnknownModelError(
            f"'{spec}' is both a torchvision and a timm model",
            hint=f"say torchvision:{spec} or timm:{spec}",
        )
    if in_tv:
        return load_torchvision(spec, kwargs, device, spec)
    if in_timm:
        return load_timm(spec, kwargs, device, spec)
    raise unknown(spec, "torchvision or timm", list(torchvision_names()) + list(timm_names()))


def _prefixed(prefix: str) -> Callable[[str], bool]:
    return lambda spec: spec.startswith(prefix)


KINDS: list[SpecKind] = [
    # a genome: its seed plus replayed edits (zenfx.genome, above loading)
    SpecKind("genome", lambda s: s.lower().endswith(".json"), "zenfx.genome:load_genome_spec"),
    # the zoo's registry: seeds, ZenNets, found nets (zenfx.zoo, above loading)
    SpecKind("zoo", _prefixed("zoo:"), "zenfx.zoo.registry:load_spec"),
    SpecKind("timm", _prefixed("timm:"), lambda s, k, d, _f: load_timm(s[5:], k, d, s)),
    SpecKind("torchvision", _prefixed("torchvision:"), lambda s, k, d, _f: load_torchvision(s[12:], k, d, s)),
    SpecKind("file", looks_like_file, _file),
    SpecKind("python", lambda s: "." in s or ":" in s, lambda s, k, d, _f: load_python(s, k, d)),
    SpecKind("registry name", lambda s: True, _registry_name),
]


def register_kind(kind: SpecKind, *, before: str | None = None) -> None:
    """Add a spec kind (before the kind named ``before``, else ahead of the catch-all bare name)."""
    names = [k.name for k in KINDS]
    at = names.index(before) if before in names else len(KINDS) - 1
    KINDS.insert(at, kind)


def resolve_model(spec: str | nn.Module, kwargs: dict[str, Any] | None = None,
                  device: str | None = None, *, file: FileRef | None = None) -> LoadedModel:
    """Build the model a spec names; ``device="meta"`` builds it without allocating weights.

    Accepted specs: ``torchvision:NAME``, ``timm:NAME``, a bare registry NAME (torchvision first,
    then timm; a name in both is ambiguous), ``pkg.mod.attr`` / ``pkg.mod:attr`` naming a
    constructor, class or instance, ``path/file.py:callable``, a genome ``.json``, ``zoo:NAME``,
    or an ``nn.Module`` (API only). ``file`` pins a file spec to a content hash (a genome's seed):
    see :class:`FileRef`.
    """
    kwargs = dict(kwargs or {})
    refuse_pretrained(kwargs)
    if isinstance(spec, nn.Module):
        if kwargs:
            raise UsageError("constructor arguments were given with an nn.Module instance")
        return LoadedModel(spec, type(spec).__name__, "module", type(spec).__name__,
                           guess_input_size(spec, type(spec).__name__), {})
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelError("empty model spec")
    spec = spec.strip()
    kind = next(k for k in KINDS if k.matches(spec))
    return kind.resolve(spec, kwargs, device, file)


def load_model(spec: str | nn.Module, **kwargs: Any) -> nn.Module:
    """The model a spec names, built on the CPU with constructor ``kwargs`` and no weights download."""
    return resolve_model(spec, kwargs).module
