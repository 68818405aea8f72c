"""Plumbing every command shares: the rich consoles, JSON output, option types and error mapping.

Machine-readable output goes to stdout, everything meant for a person's eyes while work runs
(progress, warnings, errors) to stderr, so ``zenfx X --json | jq`` always parses.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console

from zenfx.errors import EXIT_USAGE, ZenfxError

out = Console(soft_wrap=True)  # tables for people
err = Console(stderr=True, soft_wrap=True)  # progress, logs, errors

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by every command that takes a model.
ModelArg = Annotated[str, typer.Argument(help="Model spec: torchvision.models.resnet50, timm:NAME, torchvision:NAME, NAME, pkg.mod:attr, path/file.py:callable.")]
KwargOpt = Annotated[Optional[list[str]], typer.Option("--kwarg", "-k", help="Constructor argument key=value (Python literal); repeatable.")]
ResolutionOpt = Annotated[Optional[int], typer.Option("--resolution", "-r", help="Square input resolution R (input 3xRxR).")]
InputSizeOpt = Annotated[Optional[str], typer.Option("--input-size", help="Input size C,H,W; overrides --resolution.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]


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


def fail(exc: ZenfxError) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
    raise typer.Exit(exc.exit_code)


def handle_errors(fn: F) -> F:
    """Turn ZenfxError into a one-line message and its exit code; never a traceback to a user."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZenfxError as exc:
            fail(exc)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130)

    return wrapper  # type: ignore[return-value]


def usage_error(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(EXIT_USAGE)
