"""Genomes: a seed model plus an ordered list of edits, as JSON that replays to the same network.

A genome never stores weights or a pickled module: only what is needed to rebuild the model
(``seed`` spec, constructor ``kwargs``, ``input_size``, ``init_seed``) and the edits. Edits replay
IN ORDER because a depth edit renumbers container keys and so shifts the paths (and the group ids
derived from them) that later edits name.

The structure key hashes a canonical description of the built architecture (module types and
their constructor-level attributes in module order), so two edit orders that reach the same
network deduplicate to one key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GenomeError, UsageError  # noqa: F401 - GenomeError: its home was here
from ..runlog import atomic_write_text

FORMAT = "zenfx-genome"
FORMAT_VERSION = 1
EDIT_KINDS = ("width", "kernel", "depth")




@dataclass(frozen=True)
class SeedFile:
    """A file seed's identity: its content hash, plus where it lay (absolute) and, for a genome read
    from disk, where its recorded path relative to the genome file points (``near``).

    On disk: ``{"sha256", "path", "relative"}``, ``relative`` being from the genome file's folder,
    so a run folder copied together with its seed file works anywhere; ``path`` helps when only the
    genome moved. Building looks at ``near``, then ``path``, then the spec's own path, and takes the
    first file with the recorded content (``zenfx.loading.FileRef``).
    """

    sha256: str
    path: str
    near: str | None = field(default=None, compare=False)  # where it lies relative to a loaded genome file

    def ref(self) -> Any:
        from ..loading import FileRef

        return FileRef(self.sha256, tuple(p for p in (self.near, self.path) if p))

    def located(self) -> str:
        """Where the file with this content is now (the recorded path when none is found)."""
        from ..loading import file_digest

        for cand in (self.near, self.path):
            if cand and os.path.isfile(cand):
                try:
                    if file_digest(cand) == self.sha256:
                        return cand
                except OSError:
                    continue
        return self.path

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"sha256": self.sha256, "path": self.path}
        if relative_to is not None:
            d["relative"] = Path(os.path.relpath(self.located(), relative_to)).as_posix()
        return d

    @classmethod
    def from_dict(cls, d: Any, base: Path | None = None) -> SeedFile:
        if (not isinstance(d, dict) or not isinstance(d.get("sha256"), str) or not isinstance(d.get("path"), str)
                or len(d["sha256"]) != 64):
            raise GenomeError(f"\"seed_file\" must be an object with sha256 (64 hex digits) and path, got {d!r}")
        rel = d.get("relative")
        near = os.path.normpath(base / rel) if base is not None and isinstance(rel, str) else None
        return cls(d["sha256"], d["path"], near)


def _seed_file_now(seed: str) -> SeedFile | None:
    """A file spec's identity as the file is now (None for other specs, or when there is no file)."""
    from ..loading import file_ref_of

    ref = file_ref_of(seed)
    return None if ref is None else SeedFile(ref.sha256, ref.candidates[0])


def _version() -> str:
    from .. import __version__

    return __version__


@dataclass(frozen=True)
class Edit:
    """One replayable change: ``width`` of a channel group, ``kernel`` of a conv, ``depth`` of a block run."""

    kind: str  # "width" | "kernel" | "depth"
    target: str  # width: a channel-group id; kernel: a conv's module path; depth: a block run's path
    value: int  # width: new channels; kernel: new kernel size (3/5/7); depth: new number of blocks

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise GenomeError(f"edit kind '{self.kind}' is not one of {', '.join(EDIT_KINDS)}")
        if not isinstance(self.target, str) or not self.target:
            raise GenomeError(f"{self.kind} edit needs a non-empty target, got {self.target!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 1:
            raise GenomeError(f"{self.kind} edit of '{self.target}' needs a positive integer value, got {self.value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "value": self.value}

    @classmethod
    def from_dict(cls, d: Any) -> Edit:
        if not isinstance(d, dict) or set(d) != {"kind", "target", "value"}:
            raise GenomeError(f"an edit must be an object with kind, target and value, got {d!r}")
        return cls(d["kind"], d["target"], d["value"])

    def __str__(self) -> str:
        return f"{self.kind} {self.target} -> {self.value}"


def _input_size(value: Any) -> tuple[int, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise GenomeError(f"input_size must be three positive integers C,H,W, got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


@dataclass
class Genome:
    """A seed model and the edits that turn it into a candidate; JSON on disk, replayed by ``build``."""

    seed: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] = (3, 224, 224)
    init_seed: int = 0
    edits: list[Edit] = field(default_factory=list)
    zenfx_version: str = field(default_factory=_version)
    seed_key: str | None = None  # structure key of the seed when the genome was written; checked on build
    seed_file: SeedFile | None = None  # a file seed's content identity (filled in from the file when absent)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, str) or not self.seed.strip():
            raise GenomeError("a genome needs a seed model spec (a string load_model accepts)")
        if not isinstance(self.kwargs, dict):
            raise GenomeError(f"genome kwargs must be an object, got {type(self.kwargs).__name__}")
        self.input_size = _input_size(self.input_size)
        if isinstance(self.init_seed, bool) or not isinstance(self.init_seed, int):
            raise GenomeError(f"init_seed must be an integer, got {self.init_seed!r}")
        self.edits = [e if isinstance(e, Edit) else Edit.from_dict(e) for e in self.edits]
        if isinstance(self.seed_file, dict):
            self.seed_file = SeedFile.from_dict(self.seed_file)
        if self.seed_file is None:
            self.seed_file = _seed_file_now(self.seed)

    def child(self, *edits: Edit) -> Genome:
        """A new genome with ``edits`` appended (this one is left as it is)."""
        return Genome(self.seed, dict(self.kwargs), self.input_size, self.init_seed,
                      [*self.edits, *edits], self.zenfx_version, self.seed_key, self.seed_file)

    def with_edits(self, edits: list[Edit]) -> Genome:
        return Genome(self.seed, dict(self.kwargs), self.input_size, self.init_seed, list(edits),
                      self.zenfx_version, self.seed_key, self.seed_file)

    def seed_name(self) -> str:
        """The seed as persisted keys name it: the spec, except that a file seed is named by its
        content and callable (``file:SHA256:build``), so a key does not depend on the folder the
        spec was typed in or the path the file lies at."""
        if self.seed_file is None:
            return self.seed
        return f"file:{self.seed_file.sha256}:{self.seed.rsplit(':', 1)[-1]}"

    def to_dict(self, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The JSON object; ``relative_to`` (the folder the genome file goes to) adds the seed file's
        path relative to it."""
        d: dict[str, Any] = {
            "format": FORMAT, "version": FORMAT_VERSION, "zenfx_version": self.zenfx_version,
            "seed": self.seed, "kwargs": dict(self.kwargs), "input_size": list(self.input_size),
            "init_seed": self.init_seed, "edits": [e.to_dict() for e in self.edits],
        }
        if self.seed_key:
            d["seed_key"] = self.seed_key
        if self.seed_file is not None:
            d["seed_file"] = self.seed_file.to_dict(None if relative_to is None else Path(relative_to))
        return d

    def to_json(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        return json.dumps(self.to_dict(relative_to), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "genome", base: str | os.PathLike[str] | None = None) -> Genome:
        """``base``: the folder of the genome file, against which a recorded relative seed path is read."""
        edits = _check_document(d, where)
        seed_key = d.get("seed_key")
        try:
            seed_file = None if d.get("seed_file") is None else SeedFile.from_dict(
                d["seed_file"], None if base is None else Path(base))
            if seed_file is None and _is_file_spec(d["seed"]):
                # Written before genomes named their seed file by content: the recorded seed key
                # included a per-process module name, so it can be checked against nothing.
                seed_key = None
            return cls(seed=d["seed"], kwargs=d.get("kwargs") or {}, input_size=d["input_size"],
                       init_seed=d.get("init_seed", 0), edits=[Edit.from_dict(e) for e in edits],
                       zenfx_version=_version(), seed_key=seed_key, seed_file=seed_file)
        except GenomeError as exc:
            if exc.message.startswith(where):
                raise
            raise GenomeError(f"{where}: {exc.message}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file in the same folder, then rename): a crash never leaves half a genome."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json(relative_to=path.parent.resolve()))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Genome:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise GenomeError(f"genome file '{path}' does not exist") from None
        except OSError as exc:
            raise GenomeError(f"cannot read genome file '{path}': {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenomeError(f"genome file '{path}' is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(data, where=f"genome file '{path}'", base=path.parent.resolve())


_FIELDS = {"format", "version", "zenfx_version", "seed", "kwargs", "input_size", "init_seed", "edits", "seed_key",
           "seed_file"}


def _check_document(d: Any, where: str) -> list[Any]:
    """The checks a genome document must pass before its fields are read (each a one-line error);
    returns its edit list."""
    if not isinstance(d, dict):
        raise GenomeError(f"{where}: a genome is a JSON object, got {type(d).__name__}")
    if d.get("format") != FORMAT:
        raise GenomeError(f"{where}: not a zenfx genome (\"format\" is {d.get('format')!r}, want {FORMAT!r})")
    if d.get("version") != FORMAT_VERSION:
        raise GenomeError(f"{where}: genome format version {d.get('version')!r} is not {FORMAT_VERSION}")
    version = _version()
    if d.get("zenfx_version") != version:
        raise GenomeError(f"{where}: written by zenfx {d.get('zenfx_version')!r}, this is zenfx {version}; "
                          "edits name groups of that version's analysis, so it cannot be replayed here")
    extra = sorted(set(d) - _FIELDS)
    if extra:
        raise GenomeError(f"{where}: unknown genome field(s) {', '.join(extra)}")
    if "seed" not in d or "input_size" not in d:
        raise GenomeError(f"{where}: a genome needs \"seed\" and \"input_size\"")
    edits = d.get("edits", [])
    if not isinstance(edits, list):
        raise GenomeError(f"{where}: \"edits\" must be a list")
    return edits


def as_genome(obj: Any) -> Genome:
    """A Genome from a Genome, a dict or a path to a genome JSON file."""
    if isinstance(obj, Genome):
        return obj
    if isinstance(obj, dict):
        return Genome.from_dict(obj)
    if isinstance(obj, (str, os.PathLike)):
        return Genome.load(obj)
    raise GenomeError(f"expected a Genome, a genome dict or a path, got {type(obj).__name__}")


def _is_file_spec(seed: Any) -> bool:
    from ..loading import split_file_spec

    return split_file_spec(seed) is not None


def is_genome_spec(spec: Any) -> bool:
    return isinstance(spec, (str, os.PathLike)) and str(spec).strip().lower().endswith(".json")
