"""The ``zenfx`` typer application.

Each verb lives in its own ``cli/cmd_<verb>.py`` exposing ``register(app)``; this module only
discovers and orders them, so adding a command never touches another command's file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

import typer

import zenfx

from . import __path__ as _cli_path

COMMAND_ORDER = ["inspect", "convert", "audit", "score", "report", "search", "bench"]

app = typer.Typer(
    name="zenfx",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    help="Zero-shot NAS for any PyTorch model: trace, convert to vanilla-CNN form, score, report, search.\n\n"
    "Exit codes: 0 ok, 2 bad usage or unknown model, 3 not traceable, 4 not VCNN-convertible, 5 numerical failure.",
)


def _version(value: bool) -> None:
    if value:
        import torch

        typer.echo(f"zenfx {zenfx.__version__} (torch {torch.__version__})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """zenfx command-line interface."""


def _register_commands() -> None:
    names = [m.name[4:] for m in pkgutil.iter_modules(_cli_path) if m.name.startswith("cmd_")]
    names.sort(key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__package__}.cmd_{name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
