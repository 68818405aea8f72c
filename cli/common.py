"""Plumbing every command shares: the rich consoles, JSON output, option types and error mapping.

Machine-readable output goes to stdout, everything meant for a person's eyes while work runs
(progress, warnings, errors) to stderr, so ``zenfx X --json | jq`` always parses.

Only typer, rich and ``zenfx.errors`` are imported here (no torch): ``zenfx --help`` stays fast.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape

from zenfx.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    OptionError,
    Terminated,
    UsageError,
    ZenfxError,
)

out = Console(soft_wrap=True)  # tables for people
err = Console(stderr=True, soft_wrap=True)  # progress, logs, errors

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by every command that takes a model.
ModelArg = Annotated[str, typer.Argument(
    help="Model spec: torchvision.models.resnet50, timm:NAME, torchvision:NAME, NAME, pkg.mod:attr, "
         "path/file.py:callable.")]
KwargOpt = Annotated[list[str] | None, typer.Option(
    "--kwarg", "-k",
    help="Constructor argument key=value; the value is a Python literal (48, 0.5, True, None, (1, 2)); "
         "a string needs quotes: -k act='\"relu\"'. Repeatable.")]
ResolutionOpt = Annotated[int | None, typer.Option(
    "--resolution", "-r", help="Square input resolution R (input 3xRxR); at least 1.")]
InputSizeOpt = Annotated[str | None, typer.Option("--input-size", help="Input size C,H,W; overrides --resolution.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print one JSON document on stdout instead of tables (on failure: {\"error\", \"exit_code\"}).")]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(data), indent=2) + "\n")
    sys.stdout.flush()


def error_document(message: str, exit_code: int, **extra: Any) -> dict[str, Any]:
    """The JSON every failing command prints on stdout under ``--json``: ``error`` and ``exit_code``
    first, then whatever partial result the command still has (``extra``; it never overrides them)."""
    doc: dict[str, Any] = {"error": message, "exit_code": exit_code}
    doc.update((k, v) for k, v in extra.items() if k not in doc)
    return doc


def fail(exc: ZenfxError, *, json_mode: bool = False, **extra: Any) -> None:
    """Report ``exc`` (one line on stderr; with ``json_mode`` also the error document on stdout) and exit."""
    text = exc.cli_message() if isinstance(exc, OptionError) else str(exc)  # API option name -> the CLI flag
    if json_mode:
        print_json(error_document(text, exc.exit_code, **extra))
    print_error(text)
    raise typer.Exit(exc.exit_code)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr; the message is printed verbatim (a ``[1,2`` in it is not markup)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def _json_requested(kwargs: dict[str, Any]) -> bool:
    """Whether the running command was given ``--json`` (its ``json`` parameter, else the command line)."""
    if "json" in kwargs:
        return bool(kwargs["json"])
    return "--json" in sys.argv[1:]


def _internal(exc: BaseException) -> str:
    """One line for an exception no one anticipated, naming where it was raised: the innermost frame
    in zenfx (a zenfx bug) or in the user's own code (their model raised), skipping torch and other
    libraries, so the line can be acted on without a traceback."""
    def ours(f: traceback.FrameSummary) -> bool:
        return f"{os.sep}zenfx{os.sep}" in f.filename or f"{os.sep}cli{os.sep}" in f.filename

    def library(f: traceback.FrameSummary) -> bool:
        return "-packages" in f.filename or f.filename.startswith("<") or "/lib/python" in f.filename

    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f for f in reversed(frames) if ours(f) or not library(f)), None)
    at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where is not None else ""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {msg}".rstrip(": ")
    if where is not None and not ours(where):
        return f"the model's code raised {what}{at} (ZENFX_DEBUG=1 shows the traceback)"
    return f"internal error: {what}{at} (a zenfx bug; ZENFX_DEBUG=1 shows the traceback)"


def handle_errors(fn: F) -> F:
    """The one place failures become exit codes: a ZenfxError is one line on stderr and its exit code;
    Ctrl-C is exit 130; anything else is a one-line internal error, exit 1 (``ZENFX_DEBUG=1``
    re-raises it). With ``--json`` every failure also prints ``{"error": ..., "exit_code": ...}`` on
    stdout, so a script reading stdout always gets one JSON document. Never a traceback to a user."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_mode = _json_requested(kwargs)
        try:
            return fn(*args, **kwargs)
        except ZenfxError as exc:
            fail(exc, json_mode=json_mode)
        except KeyboardInterrupt as exc:
            code, what = (EXIT_TERMINATED, "terminated") if isinstance(exc, Terminated) else \
                (EXIT_INTERRUPTED, "interrupted")
            if json_mode:
                print_json(error_document(what, code))
            err.print(f"[yellow]{what}[/]")
            raise typer.Exit(code) from None
        except (typer.Exit, typer.TyperException, typer.Abort, SystemExit):  # typer's own flow: not bugs
            raise
        except Exception as exc:
            if os.environ.get("ZENFX_DEBUG"):
                raise
            message = _internal(exc)
            if json_mode:
                print_json(error_document(message, EXIT_INTERNAL))
            print_error(message)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def usage_error(message: str) -> None:
    """Refuse bad usage (exit 2); inside a ``handle_errors`` command, so ``--json`` gets its document."""
    raise UsageError(message)


def input_size_option(input_size: str | None, resolution: int | None) -> tuple[int, int, int] | None:
    """``--input-size`` / ``--resolution`` as given, checked (``-r 0`` is an error, not the default);
    None when neither was given, so the model's own default size applies."""
    from zenfx.loading import parse_input_size

    if input_size is None and resolution is None:
        return None
    return parse_input_size(input_size, resolution, (3, 224, 224))


def at_least(flag: str, value: float | None, minimum: float, *, why: str = "") -> None:
    """Refuse ``flag`` below ``minimum`` (None means "not given" and passes)."""
    if value is not None and value < minimum:
        shown = int(minimum) if float(minimum).is_integer() else minimum
        raise UsageError(f"{flag} must be at least {shown}, got {value}" + (f" ({why})" if why else ""))


def above(flag: str, value: float | None, bound: float, *, why: str = "") -> None:
    """Refuse ``flag`` at or below ``bound`` (None passes)."""
    if value is not None and value <= bound:
        raise UsageError(f"{flag} must be greater than {bound:g}, got {value}" + (f" ({why})" if why else ""))


DEFAULT_TRUTH = "../shared/data"


def resolve_truth(truth: str) -> str:
    """``--truth`` for the bench commands. A path the user typed is relative to their current
    directory, as usual. The default, ``../shared/data`` (this project's layout: the data folder
    beside the checkout), used to work only from the repository root: it is now ``$ZENFX_TRUTH``
    when set, else ``../shared/data`` from the current directory when that exists, else the
    ``shared/data`` folder beside the zenfx checkout, so ``zenfx bench`` finds it from anywhere."""
    from pathlib import Path

    if truth != DEFAULT_TRUTH:
        return truth
    env = os.environ.get("ZENFX_TRUTH")
    if env:
        return env
    if Path(truth).exists():
        return truth
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return str(beside) if beside.exists() else truth


# --------------------------------------------------------------------------- tables on any terminal

# A figure: a number with its unit or interval (155.03k, 40.53 ± 1.15, 224x224, 12.4 ms, 8..64 /8,
# 3/5/7, 19%, #2), or a placeholder. Such a cell is never cut or wrapped.
_FIGURE = re.compile(r"^[-+~<>#(]?\s*[\d.,]+\s*[a-zA-Zµ%)]{0,4}"
                     r"(\s*(±|x|/|\.\.|-|–)\s*[\d.,]+\s*[a-zA-Zµ%)]{0,4})*\s*$|^[-—–]?$")
_NUMBER = re.compile(r"(?<![\w.])\d[\d.,]*[a-zA-Zµ%]*(?![\w.])")  # a number in text, not one in a name
_TEXT_MIN = 12  # a name or status column folds, but keeps at least this many cells (or its longest)


def _plain(cell: Any) -> str | None:
    from rich.text import Text

    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    if isinstance(cell, Text):
        return cell.plain
    return None


def _fits(console: Console, table: Any) -> bool:
    """Whether ``table`` renders within ``console``'s width with every figure cell whole."""
    probe = Console(width=console.width, record=True, file=io.StringIO(), color_system=None, soft_wrap=False)
    probe.print(table, crop=False)
    text = probe.export_text()
    if any(cell_len(line) > console.width for line in text.splitlines()):
        return False
    flat = text
    for col in table.columns:
        if not getattr(col, "_zenfx_figure", False):
            continue
        for cell in col._cells:
            value = _plain(cell)
            if value and value.strip() and not re.search(rf"(?<![\w.]){re.escape(value.strip())}(?![\w.])", flat):
                return False  # cut or wrapped
    return True


def print_table(table: Any, console: Console | None = None) -> None:
    """Print a rich table so that a number or a unit is never cut, on any terminal width: figure
    columns (every cell a number with its unit) are never wrapped or shortened, nor is a column its
    command made ``no_wrap`` (an identifier); name and status columns fold (keeping at least a few
    cells, so "frozen" stays visible, and never inside a number); when even that does not fit, the
    table is printed stacked, one "header: value" line per cell."""
    console = console or out
    for col in table.columns:
        cells = [_plain(c) for c in col._cells]
        texts = [c for c in cells if c is not None]
        figure = bool(texts) and any(t.strip() for t in texts) and all(_FIGURE.match(t) for t in texts)
        longest = max((cell_len(t) for t in texts), default=0)
        header = len(str(col.header)) if col.header else 0
        if figure:
            col._zenfx_figure = True
            col.no_wrap, col.overflow = True, "fold"
            col.min_width = max(longest, header if table.show_header else 0)
        elif col.no_wrap:  # an identifier its command keeps whole (a group id to copy into an edit)
            col.min_width = max(longest, 1)
        else:  # folds at spaces first; never narrower than its longest number (so no number is folded)
            col.overflow = "fold"
            numbers = [cell_len(m) for t in texts for m in _NUMBER.findall(t)]
            col.min_width = max([min(max(longest, 1), _TEXT_MIN), *numbers])
    if _fits(console, table):
        console.print(table)
        return
    _print_stacked(table, console)


def _print_stacked(table: Any, console: Console) -> None:
    from rich.text import Text

    if table.title:
        console.print(Text.from_markup(str(table.title), style="italic"), soft_wrap=True)
    cols = table.columns
    rows = max((len(c._cells) for c in cols), default=0)
    for i in range(rows):
        cells = [c._cells[i] if i < len(c._cells) else "" for c in cols]
        first, rest = cells[0], cells[1:]
        line = Text.from_markup(first) if isinstance(first, str) else first
        console.print(Text("• ", style="dim") + line, soft_wrap=True)
        for col, cell in zip(cols[1:], rest, strict=True):
            value = Text.from_markup(cell) if isinstance(cell, str) else cell
            if not _plain(value):
                continue
            head = f"{col.header}: " if table.show_header and col.header else ""
            console.print(Text("    " + head, style="dim") + value, soft_wrap=True)
