"""A user's own backbone file (``path/file.py:build``), named by its content.

The file is imported once per content per process as ``zenfx_user_<sha256>``, so its classes are
the same in every process, folder and machine; a stored model (a genome) pins the file by hash
(:class:`FileRef`) and finds it from any folder; a worker without the file gets its source.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownModelError, UsageError
from .construct import LoadedModel, build_module
from .hub import guess_input_size, unknown


@dataclass(frozen=True)
class FileRef:
    """Which seed file a stored model means: its content hash, and where it may lie on this machine.

    A genome written next week, in another folder or on another machine names its seed file by
    content (``sha256``) as well as by path; ``candidates`` are the places to look, in order (the
    path relative to the genome file, the absolute path it was written with, the spec's own path).
    """

    sha256: str
    candidates: tuple[str, ...] = ()


class SeedFileChangedError(UsageError):
    """The seed file is there, but its content is not the one a stored model was made from."""


@dataclass(frozen=True)
class UserSource:
    """A user's seed file as text: what a worker on another machine executes instead of the file."""

    name: str  # the file's base name, for messages
    text: str


_SOURCES: dict[str, UserSource] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of the file's bytes: the file's identity, whatever its path, process or machine."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def user_module_name(sha256: str) -> str:
    """The module name a user's file is imported under: named by its content, never by a salted
    ``hash()`` or its path, so its classes' ``__module__`` (part of every structure key) is the same
    in every process, folder and machine, and an identical file moved elsewhere is the same model."""
    return f"zenfx_user_{sha256[:20]}"


def register_source(sha256: str, name: str, text: str) -> None:
    """Make a file's source loadable by hash in this process (a worker gets the driver's this way)."""
    _SOURCES[sha256] = UserSource(name, text)


def registered_source(sha256: str) -> UserSource | None:
    """The source of a user file loaded (or registered) in this process, by content hash."""
    return _SOURCES.get(sha256)


def split_file_spec(spec: str) -> tuple[str, str] | None:
    """``(path, attr)`` for a ``path/file.py:attr`` spec, else None."""
    if not isinstance(spec, str) or not looks_like_file(spec) or ":" not in spec:
        return None
    path, attr = spec.strip().rsplit(":", 1)
    return path, attr


def file_ref_of(spec: str) -> FileRef | None:
    """The content identity of a file spec's file as it is now (None: not a file spec, or no file)."""
    parts = split_file_spec(spec)
    if parts is None or not os.path.isfile(parts[0]):
        return None
    return FileRef(file_digest(parts[0]), (os.path.abspath(parts[0]),))


def _locate(path: str, ref: FileRef) -> str | None:
    """The first candidate whose content is ``ref``'s; a file that exists with other content is an
    edited seed (one line, exit 2) unless the source is already known in this process."""
    seen: list[str] = []
    for cand in dict.fromkeys([*ref.candidates, path]):
        if cand and os.path.isfile(cand):
            if file_digest(cand) == ref.sha256:
                return cand
            seen.append(cand)
    if user_module_name(ref.sha256) in sys.modules or ref.sha256 in _SOURCES:
        return None  # loaded here before (or shipped by the driver): no file needed
    if seen:
        raise SeedFileChangedError(
            f"the seed file '{seen[0]}' changed since the genome was written (its sha256 is not the recorded "
            f"{ref.sha256[:12]}...)", hint="restore the file, or re-create the genome from the file as it is now")
    looked = ", ".join(f"'{c}'" for c in dict.fromkeys([*ref.candidates, path]) if c)
    raise UnknownModelError(f"seed file '{os.path.basename(path)}' not found (looked at {looked})",
                            hint="keep the seed file beside the genome or at its recorded path")


def _exec_user_module(mod_name: str, filename: str, text: str, where: str) -> Any:
    """Import ``text`` as module ``mod_name``; the file's own folder is importable meanwhile, so a
    sibling module (``from blocks import Block``) works as it does when the file runs as a script."""
    import linecache
    import types

    module = types.ModuleType(mod_name)
    module.__file__ = filename
    # Tracebacks, inspect and the tracer's "at file.py:LINE" read lines through linecache: a shipped
    # source has no file on this machine, so its text goes there.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    folder = os.path.dirname(os.path.abspath(filename))
    sys.modules[mod_name] = module
    added = os.path.isdir(folder) and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        exec(compile(text, filename, "exec"), module.__dict__)  # noqa: S102 - the user's own model file
    except Exception as exc:
        del sys.modules[mod_name]
        if isinstance(exc, ModuleNotFoundError) and exc.name and not os.path.isfile(filename):
            raise UsageError(f"importing '{where}' failed: it imports '{exc.name}', which this process cannot "
                             "find (only the seed file itself is shipped to workers)",
                             hint="keep the model in one file, or install that module where the workers run"
                             ) from None
        raise UsageError(f"importing '{where}' failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    return module


def user_source(path: str, ref: FileRef) -> UserSource:
    """The source text of the seed file ``ref`` names (found as building would find it), for shipping
    to workers that may not see the file."""
    if ref.sha256 not in _SOURCES:
        found = _locate(path, ref)
        if found is None:
            raise UnknownModelError(f"seed file '{os.path.basename(path)}' is not on this machine")
        with open(found, encoding="utf-8") as fh:
            register_source(ref.sha256, os.path.basename(found), fh.read())
    return _SOURCES[ref.sha256]


def _user_module(path: str, ref: FileRef | None) -> Any:
    """The module of a user's file, imported once per content in a process."""
    if ref is not None and user_module_name(ref.sha256) in sys.modules:
        return sys.modules[user_module_name(ref.sha256)]  # pinned content already here: no disk read per build
    if ref is not None:
        found = _locate(path, ref)
        sha = ref.sha256
    else:
        if not os.path.isfile(path):
            raise UnknownModelError(f"file '{path}' does not exist")
        found, sha = path, file_digest(path)
    mod_name = user_module_name(sha)
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    if found is not None:
        try:
            with open(found, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UnknownModelError(f"cannot import '{path}' as Python: {exc}") from None
        register_source(sha, os.path.basename(found), text)
        return _exec_user_module(mod_name, os.path.abspath(found), text, path)
    shipped = _SOURCES[sha]
    return _exec_user_module(mod_name, os.path.join(os.path.dirname(os.path.abspath(path)), shipped.name),
                             shipped.text, path)


def load_file(path: str, attr: str, kwargs: dict[str, Any], device: str | None, spec: str,
               ref: FileRef | None = None) -> LoadedModel:
    module = _user_module(path, ref)
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise unknown(attr, path, public)
    ctor = getattr(module, attr)
    model = build_module(ctor, kwargs, device, what=spec)
    name = f"{os.path.basename(path)}:{attr}"
    return LoadedModel(model, name, "file", spec, guess_input_size(model, attr), kwargs)


def looks_like_file(spec: str) -> bool:
    head = spec.rsplit(":", 1)[0]
    return head.endswith(".py") or os.sep in head
