"""Resumable rows and safe JSON files: the one way audit, bench and search write results that a
killed run must be able to continue from.

- ``JsonlLog``: one JSON object per line, appended, flushed and fsynced per row. The first line is
  the run's identity (``{"zenfx_log": 1, "header": {...}}``): reopening the file for a different run
  is refused instead of mixing two runs' rows.
- ``CsvLog``: the same for CSV, the header row being the identity (the column names).
- A kill mid-write leaves a last line without its newline: both logs drop it (and cut it from the
  file, so the next row starts on a line of its own) and the row is simply run again.
- ``atomic_write_json``: a whole file replaced at once (temp file in the same folder, fsync,
  ``os.replace``), so a reader sees the old or the new file, never half of one.
- ``read_json``: a corrupt or truncated file is a one-line ``UsageError`` naming it, not a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError

LOG_FORMAT = 1
_HEADER_KEY = "zenfx_log"


def _read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise UsageError(f"{what} {path} is not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not a UTF-8 text file") from None


def _complete_part(path: Path, text: str) -> str:
    """The text up to the last newline; a partial last line (a write cut by a kill) is cut from the
    file too, so that the next append starts on a fresh line."""
    if not text or text.endswith("\n"):
        return text
    keep = text[: text.rfind("\n") + 1]
    with open(path, "r+b") as fh:
        fh.truncate(len(keep.encode("utf-8")))
        fh.flush()
        os.fsync(fh.fileno())
    return keep


def _check_writable_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{what} {path}: {parent} is not a directory")


class _AppendLog:
    """Shared plumbing: an append handle opened on first write, flushed and fsynced per row."""

    what = "log"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh: io.TextIOBase | None = None
        self.dropped = 0  # partial/corrupt lines dropped when reading
        _check_writable_file(self.path, self.what)

    def _open(self) -> io.TextIOBase:
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8", newline="")
            except OSError as exc:
                raise UsageError(f"cannot write {self.what} {self.path}: {exc.strerror or exc}") from None
        return self._fh

    def _write(self, text: str) -> None:
        fh = self._open()
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> _AppendLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlLog(_AppendLog):
    """Append-only JSON lines with the run identity as the first line.

    ``header`` (a JSON-able dict): written as the first line of a new file; an existing file must
    carry an equal header, else ``UsageError`` (another run's rows are never mixed in). ``header=None``
    accepts any file and writes none.
    """

    what = "log"

    def __init__(self, path: str | os.PathLike[str], *, header: dict[str, Any] | None = None,
                 what: str = "log") -> None:
        self.what = what
        super().__init__(path)
        self.header = None if header is None else json.loads(json.dumps(header))
        self._rows: list[dict[str, Any]] = []
        self._load()

    def _load(self) -> None:
        lines = [ln for ln in self._complete_text().split("\n") if ln.strip()]
        found_header, body = _split_header(lines)
        if lines and self.header is not None and found_header != self.header:
            self._refuse(found_header)
        if not lines and self.header is not None:
            self._write(json.dumps({_HEADER_KEY: LOG_FORMAT, "header": self.header}, sort_keys=True) + "\n")
        self._read_rows(body)

    def _complete_text(self) -> str:
        """The file's complete lines ("" for no file); a file holding only a partial line counts one dropped."""
        text = ""
        if self.path.exists():
            text = _complete_part(self.path, _read_text(self.path, self.what))
            if text == "" and self.path.stat().st_size:  # only a partial line: start afresh
                self.dropped += 1
        return text

    def _refuse(self, found_header: Any) -> None:
        """Another run's file (or rows without a header): never mixed with this run's rows."""
        if found_header is None:
            raise UsageError(f"{self.what} {self.path} holds rows without a run header, not this run's",
                             hint="use another path, or delete the file to start over")
        raise UsageError(f"{self.what} {self.path} belongs to a different run ({_diff(found_header, self.header)})",
                         hint="use another path, or the same settings as that run")

    def _read_rows(self, body: list[str]) -> None:
        """Keep the rows that parse as JSON objects; count the others as dropped (their tasks run again)."""
        for line in body:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                self.dropped += 1  # a line garbled by an older writer: its task simply runs again
                continue
            if isinstance(row, dict):
                self._rows.append(row)
            else:
                self.dropped += 1

    def rows(self) -> list[dict[str, Any]]:
        """Complete rows in file order (copies of what was read plus what was appended since)."""
        return list(self._rows)

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, allow_nan=True)
        if "\n" in line:  # pragma: no cover - json.dumps never emits raw newlines
            raise ValueError("a row must serialise to one line")
        self._write(line + "\n")
        self._rows.append(row)


class CsvLog(_AppendLog):
    """Append-only CSV whose identity is its header row (the field names). An existing file with
    other columns is refused; a row cut mid-write is dropped and cut from the file. Values are
    written on one physical line (newlines inside values become spaces), so "the last line has no
    newline" is exactly "the last row is partial"."""

    def __init__(self, path: str | os.PathLike[str], fields: Sequence[str], *, what: str = "CSV") -> None:
        self.what = what
        super().__init__(path)
        self.fields = list(fields)
        self._rows: list[dict[str, str]] = []
        self._load()

    def _load(self) -> None:
        text = ""
        if self.path.exists():
            text = _complete_part(self.path, _read_text(self.path, self.what))
        if not text.strip():
            if self.path.exists() and self.path.stat().st_size:
                self.path.write_text("")
            self._write(_csv_line(self.fields))
            return
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        if header != self.fields:
            raise UsageError(f"{self.what} {self.path} has other columns than this command writes "
                             f"({_cols(header)} vs {_cols(self.fields)})",
                             hint="use another file, or move that one away")
        for values in reader:
            if not values:
                continue
            if len(values) != len(self.fields):
                self.dropped += 1
                continue
            self._rows.append(dict(zip(self.fields, values, strict=False)))

    def rows(self) -> list[dict[str, str]]:
        """Complete rows as read (string values) plus rows appended since (as given)."""
        return list(self._rows)

    def append(self, row: dict[str, Any]) -> None:
        values = [_one_line(row.get(f, "")) for f in self.fields]
        self._write(_csv_line(values))
        self._rows.append({f: row.get(f, "") for f in self.fields})


def _split_header(lines: list[str]) -> tuple[Any, list[str]]:
    """(the run header of the first line or None, the row lines after it)."""
    if not lines:
        return None, lines
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        first = None
    if isinstance(first, dict) and _HEADER_KEY in first:
        return first.get("header"), lines[1:]
    return None, lines


def _one_line(v: Any) -> Any:
    if isinstance(v, str) and ("\n" in v or "\r" in v):
        return " ".join(v.split())
    return v


def _csv_line(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _cols(cols: Sequence[str], n: int = 4) -> str:
    return ",".join(cols[:n]) + (",..." if len(cols) > n else "") + f" [{len(cols)} columns]"


def _diff(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if keys:
            return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])
    return f"{old!r} there"


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON so that readers see the old file or the new one, never a torn one."""
    p = Path(path)
    _check_writable_file(p, "file")
    data = (json.dumps(obj, indent=indent) + "\n").encode("utf-8")  # before the temp file: a bad obj leaves none
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {p}: {exc.strerror or exc}") from None
    _replace_with(p, fd, tmp, data)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new one, never a torn
    one; ``mode`` sets the new file's permissions (mkstemp makes it 0600). File-system errors
    propagate as OSError: callers that face users word them."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    _replace_with(p, fd, tmp, data, mode)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _replace_with(p: Path, fd: int, tmp: str, data: bytes, mode: int | None = None) -> None:
    """Fill the temp file ``tmp`` (open as ``fd``) with ``data``, fsync it, rename it over ``p`` and
    sync the folder; the temp file is removed on any failure."""
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a power cut only once the folder is synced
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The JSON in ``path``; a missing, unreadable, corrupt or truncated file is a one-line
    ``UsageError`` naming ``what`` and the path."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} not found")
    text = _read_text(p, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # our files are objects or arrays: one that does not close is cut short, not garbled
        state = "truncated" if text.rstrip()[-1:] not in ("}", "]") else "corrupt"
        raise UsageError(f"{what} {p} is {state} (invalid JSON at line {exc.lineno}, column {exc.colno})") from None


__all__ = ["CsvLog", "JsonlLog", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json"]
