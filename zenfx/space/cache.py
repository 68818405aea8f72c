"""The analysed (and probed) topology of a seed, cached on disk so a search pays for it once.

Location: ``$ZENFX_CACHE_DIR``, else ``$XDG_CACHE_HOME/zenfx``, else ``~/.cache/zenfx``; one JSON
file per key under ``space/``. The key hashes the seed spec (a file seed: its content), its kwargs,
the input size, the zenfx version, the seed's structure key (so an edited user file is re-analysed) and a hash of the
analysis code (so a cache from another revision is not reused). Writes are atomic;
an unreadable or corrupt entry is recomputed, never fatal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..runlog import atomic_write_text
from .analysis import Topology

CACHE_FORMAT = 1


def cache_dir() -> Path:
    env = os.environ.get("ZENFX_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "zenfx"
    return Path.home() / ".cache" / "zenfx"


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The analysis code itself (this package and the surgery its probe applies): a cache written by
    another revision of these files is not reused."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([*here.glob("*.py"), *(here.parent / "surgery").glob("*.py")]):
        try:
            h.update(path.name.encode() + path.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:16]


def cache_key(g: Any, seed_structure: str, probe: bool) -> str:
    """``g``: the seed's genome (its ``seed_name()``, kwargs and input size are what count)."""
    from .. import __version__

    # A file seed is keyed by its content and callable, not its path: the same file from another
    # folder (or spelled otherwise) finds its entry, an edited one does not.
    ident = json.dumps([g.seed_name(), g.kwargs, list(g.input_size), __version__, seed_structure, probe, CACHE_FORMAT,
                        _code_hash()],
                       sort_keys=True, default=str)
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def _path(key: str) -> Path:
    return cache_dir() / "space" / f"{key}.json"


def load(key: str) -> Topology | None:
    path = _path(key)
    try:
        data: Any = json.loads(path.read_text())
        if data.get("format") != CACHE_FORMAT:
            return None
        return Topology.from_dict(data["topology"])
    except FileNotFoundError:
        return None
    except Exception:
        return None  # corrupt or from an older layout: recomputed and overwritten


def save(key: str, topo: Topology) -> None:
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"format": CACHE_FORMAT, "topology": topo.to_dict()}))
    except OSError:
        pass  # a read-only cache dir costs time, not correctness
