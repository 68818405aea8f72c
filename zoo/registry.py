"""The zoo's one registry: every ``zoo:NAME`` spec resolves through here.

In the spirit of torchvision's ``models/_api.py``: entries are small frozen records (name, kind,
default input size, a constructor, a one-line description), ``list_entries(pattern)`` and
``get_entry(name)`` read them, and nothing else lives here. The modules that define networks
(``cifar``, ``zennas``, ``nb201``, ...) stay ignorant of the registry; this file names them.

Kinds: ``family`` (a classic network, e.g. CIFAR ResNet-20), ``seed`` (a small starting point for
``zenfx search``), ``released`` (a network another paper published, e.g. Zen-NAS's ZenNets) and
``found`` (a network zenfx's own search returned, stored as a genome JSON under ``zoo/found/``).
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zenfx.errors import UnknownModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

KINDS = ("family", "seed", "released", "found")
HERE = Path(__file__).resolve().parent
FOUND_DIR = HERE / "found"
FIGURES_FILE = HERE / "figures.json"


@dataclass(frozen=True)
class ZooEntry:
    """One named network. ``build(**kwargs)`` calls the constructor with ``defaults`` overridden by
    ``kwargs``; ``meta`` carries what the zoo knows about it (published figures, source string)."""

    name: str
    kind: str
    input_size: tuple[int, int, int]
    constructor: Callable[..., nn.Module]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> nn.Module:
        return self.constructor(**{**self.defaults, **kwargs})

    @property
    def spec(self) -> str:
        return f"zoo:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "kind": self.kind,
                "input_size": list(self.input_size), "description": self.description,
                "defaults": dict(self.defaults), **({"meta": self.meta} if self.meta else {})}


# --------------------------------------------------------------------------- the entries


def _lazy(module: str, attr: str, **fixed: Any) -> Callable[..., nn.Module]:
    """A constructor that imports ``zenfx.zoo.<module>`` only when called: listing the zoo stays
    free of torch imports."""

    def ctor(**kwargs: Any) -> nn.Module:
        fn = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        return fn(**{**fixed, **kwargs})

    ctor.__name__ = attr
    ctor.__qualname__ = f"{module}.{attr}"
    return ctor


def _cifar_entries() -> list[ZooEntry]:
    out = [
        ZooEntry("cifar_resnet_basic", "seed", (3, 32, 32), _lazy("cifar", "cifar_resnet_basic"),
                 "CIFAR seed: 3x3 s1 stem (8), 4 stages x 1 torchvision BasicBlock, widths 16/32/64/64"),
        ZooEntry("cifar_resnet_bottleneck", "seed", (3, 32, 32), _lazy("cifar", "cifar_resnet_bottleneck"),
                 "CIFAR seed: 3x3 s1 stem (8), 4 stages x 1 torchvision Bottleneck, planes 8/16/32/32 (x4 out)"),
    ]
    for depth in (20, 32, 44, 56, 110):
        out.append(ZooEntry(f"cifar_resnet{depth}", "family", (3, 32, 32),
                            _lazy("cifar", "cifar_resnet", depth=depth),
                            f"CIFAR ResNet-{depth} (He et al. 2016): 3 stages x {(depth - 2) // 6} "
                            "torchvision BasicBlocks at 16/32/64, 1x1 projection shortcuts"))
    return out


NB201_ALL_CONV3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _benchmark_entries() -> list[ZooEntry]:
    return [
        ZooEntry("nb201", "family", (3, 32, 32), _lazy("nb201", "nb201"),
                 "NAS-Bench-201 cell network (C=16, N=5); -k arch='\"|op~0|+...\"' picks the cell",
                 defaults={"arch": NB201_ALL_CONV3X3, "num_classes": 10}),
        ZooEntry("nats_sss", "family", (3, 32, 32), _lazy("natsbench", "nats_sss"),
                 "NATS-Bench size-space network; -k channels='\"C0:C1:C2:C3:C4\"' picks the widths",
                 defaults={"channels": "64:64:64:64:64", "num_classes": 100}),
    ]


ZENNET_DIR = HERE / "zennet"


def _zennas_entries() -> list[ZooEntry]:
    """Zen-NAS's released ZenNets and search seeds: strings in ``zoo/zennet/<name>.txt``, their
    figures in ``zoo/zennet/index.json``; plus ``zennas``, any string via ``-k structure=...``."""
    index = json.loads((ZENNET_DIR / "index.json").read_text())["entries"]
    build = _lazy("zennas", "build")
    out = [ZooEntry("zennas", "family", (3, 32, 32), build,
                    "any Zen-NAS structure string: -k structure='\"SuperConvK3BNRELU(3,8,1,1)...\"' "
                    "(default: the reference's CIFAR seed)",
                    defaults={"structure": (ZENNET_DIR / "zennas_cifar_seed.txt").read_text().strip(),
                              "num_classes": 10, "use_se": False})]
    for name, info in index.items():
        structure = (ZENNET_DIR / f"{name}.txt").read_text().strip()
        meta = {k: info[k] for k in ("reference_name", "published", "note") if k in info}
        res = int(info["resolution"])
        out.append(ZooEntry(name, info["kind"], (3, res, res), build, info["description"],
                            defaults={"structure": structure, "num_classes": int(info["num_classes"]),
                                      "use_se": bool(info["use_se"])}, meta=meta))
    return out


FOUND_FORMAT = "zenfx-zoo-found"


def _found_entries() -> list[ZooEntry]:
    """Every ``zoo/found/NAME.json``: a network zenfx's search returned, as the genome that rebuilds
    it (``zenfx.build``) plus how it was found (command, date, time, score, figures)."""
    out = []
    for path in sorted(FOUND_DIR.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("format") != FOUND_FORMAT or "genome" not in data:
            continue
        genome = data["genome"]
        size = tuple(int(x) for x in genome.get("input_size") or (3, 32, 32))
        meta = {"found": data.get("found", {}), "seed": genome.get("seed"), "edits": len(genome.get("edits") or [])}
        out.append(ZooEntry(path.stem, "found", size, _lazy("registry", "build_found", path=str(path)),
                            str(data.get("description") or f"found by zenfx search from {genome.get('seed')}"),
                            meta=meta))
    return out


def build_found(path: str, device: str | None = None, **kwargs: Any) -> nn.Module:
    """Rebuild a found network from its genome (identical weights for the same genome)."""
    if kwargs:
        raise UsageError(f"a found network is a fixed genome: it takes no constructor arguments "
                         f"(got {', '.join(kwargs)})")
    import zenfx
    from zenfx.genome import Genome

    data = json.loads(Path(path).read_text())
    genome = Genome.from_dict(data["genome"], where=f"zoo entry {Path(path).stem}")
    return zenfx.build(genome, device=device)  # type: ignore[attr-defined]


_PROVIDERS: list[Callable[[], list[ZooEntry]]] = [_cifar_entries, _zennas_entries, _benchmark_entries,
                                                  _found_entries]


@lru_cache(maxsize=1)
def _registry() -> dict[str, ZooEntry]:
    reg: dict[str, ZooEntry] = {}
    for provider in _PROVIDERS:
        for entry in provider():
            if entry.kind not in KINDS:
                raise ValueError(f"zoo entry {entry.name}: unknown kind {entry.kind!r}")
            if entry.name in reg:
                raise ValueError(f"zoo entry {entry.name} registered twice")
            reg[entry.name] = entry
    return reg


def refresh() -> None:
    """Forget the cached registry (after files were added under ``zoo/found/``)."""
    _registry.cache_clear()


# --------------------------------------------------------------------------- public API


def list_entries(pattern: str | None = None, kind: str | None = None) -> list[ZooEntry]:
    """Entries whose name matches the shell-style ``pattern`` (``"zennet_*"``), registry order."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown zoo kind {kind!r} (known: {', '.join(KINDS)})")
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain word matches anywhere in the name
    out = []
    for entry in _registry().values():
        if pattern and not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        if kind and entry.kind != kind:
            continue
        out.append(entry)
    return out


def list_names(pattern: str | None = None) -> list[str]:
    return [e.name for e in list_entries(pattern)]


def get_entry(name: str) -> ZooEntry:
    reg = _registry()
    if name.startswith("zoo:"):
        name = name[4:]
    if name not in reg:
        import difflib

        close = difflib.get_close_matches(name, list(reg), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join('zoo:' + c for c in close)}?" if close else "see `zenfx zoo`"
        raise UnknownModelError(f"unknown zoo entry '{name}'", hint=hint)
    return reg[name]


def load_entry(name: str, kwargs: dict[str, Any], device: str | None, spec: str) -> Any:
    """The ``zoo:NAME`` branch of ``zenfx.loading.resolve_model``: a ``LoadedModel`` (source "zoo")
    whose default input size is the entry's."""
    from zenfx.loading import LoadedModel, build_module

    entry = get_entry(name)
    if entry.kind == "found":  # a genome replays on its own seed: zenfx.build handles the device itself
        model = entry.build(device=device, **kwargs)
    else:
        model = build_module(lambda **k: entry.build(**k), kwargs, device)
    return LoadedModel(model, entry.name, "zoo", spec, entry.input_size, kwargs)


def load_spec(spec: str, kwargs: dict[str, Any], device: str | None, _file: Any = None) -> Any:
    """The resolver ``zenfx.loading`` registers for ``zoo:NAME`` specs."""
    return load_entry(spec[4:], kwargs, device, spec)


__all__ = ["KINDS", "ZooEntry", "get_entry", "list_entries", "list_names", "load_entry", "load_spec", "refresh"]
