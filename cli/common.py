"""Plumbing every command shares: the rich consoles, JSON output, option types and error mapping.

Machine-readable output goes to stdout, everything meant for a person's eyes while work runs
(progress, warnings, errors) to stderr, so ``zenfx X --json | jq`` always parses.

Only typer, rich and ``zenfx.errors`` are imported here (no torch): ``zenfx --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from zenfx.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, OptionError, UsageError, ZenfxError

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
        except KeyboardInterrupt:
            if json_mode:
                print_json(error_document("interrupted", EXIT_INTERRUPTED))
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
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
