"""The ``zenfx`` typer application.

Each verb lives in its own ``cli/cmd_<verb>.py`` exposing ``register(app)``; this module only
discovers and orders them, so adding a command never touches another command's file.

Start-up is kept cheap and interruptible: this module imports only the standard library at top
level; typer and the command modules load inside ``main()`` (under its Ctrl-C guard), and torch
only inside a command's function, so ``zenfx --help`` never imports torch. ``app`` is built on
first access (``from zenfx.cli.app import app`` still works).
"""

from __future__ import annotations

import sys

from zenfx.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated  # light: no torch

COMMAND_ORDER = ["inspect", "convert", "audit", "score", "report", "search", "export", "bench"]

HELP = (
    "Zero-shot NAS for any PyTorch model: trace, convert to vanilla-CNN form, score, report, search.\n\n"
    "Exit codes: 0 ok, 1 unexpected error (a bug, or raised by the model's code), 2 bad usage or unknown model, "
    "3 not traceable, 4 not VCNN-convertible, 5 numerical failure, 130 interrupted (Ctrl-C).\n\n"
    "With --json a failure prints {\"error\": ..., \"exit_code\": ...} on stdout."
)

_APP = None


def _version(value: bool) -> None:
    if value:
        import torch
        import typer

        import zenfx

        typer.echo(f"zenfx {zenfx.__version__} (torch {torch.__version__})")
        raise typer.Exit(0)


def build_app():  # -> typer.Typer (typer is imported inside)
    """The typer app with every ``cmd_*`` module registered (built once)."""
    global _APP
    if _APP is not None:
        return _APP
    import importlib
    import pkgutil

    import typer

    from . import __path__ as cli_path

    app = typer.Typer(name="zenfx", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      rich_markup_mode="rich", help=HELP)

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                     help="Print the version and exit."),
    ) -> None:
        """zenfx command-line interface."""

    names = [m.name[4:] for m in pkgutil.iter_modules(cli_path) if m.name.startswith("cmd_")]
    names.sort(key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__package__}.cmd_{name}")
        module.register(app)
    _APP = app
    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _import_torch_shielded() -> None:
    """Import torch with Ctrl-C deferred until the import is over.

    A SIGINT that lands while torch's C++ extension initialises can surface inside pybind11 and abort
    the process (``terminate called ... error_already_set``, exit -6) instead of raising
    KeyboardInterrupt; deferring it to the end of the import turns it into the usual clean 130.
    Every command but ``--help`` needs torch anyway, so this costs nothing there."""
    import signal

    if "torch" in sys.modules or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    hits: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        import torch  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, previous)
    if hits:
        raise KeyboardInterrupt


def _wants_help(argv: list[str]) -> bool:
    return not argv or any(a in ("--help", "-h", "--version") for a in argv)


def _run(argv: list[str]) -> None:
    """Run the app; under ``--json`` even a click usage error (bad option, missing argument) prints
    the JSON error document on stdout."""
    app = build_app()
    if not _wants_help(argv):
        _import_torch_shielded()
    if "--json" not in argv:
        app()
        return
    import typer

    from .common import error_document, print_json

    try:
        rv = app(standalone_mode=False)
    except typer.Abort:
        raise KeyboardInterrupt from None
    except typer.TyperException as exc:  # click's usage errors (typer vendors click): bad option, missing argument
        code = int(getattr(exc, "exit_code", 2))
        print_json(error_document(exc.format_message() if hasattr(exc, "format_message") else str(exc), code))
        if hasattr(exc, "show"):
            exc.show()
        raise SystemExit(code) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)


def _second_ctrl_c_ends_at_once() -> None:
    """The first Ctrl-C raises KeyboardInterrupt as usual (a clean exit 130 through handle_errors and
    main). A second one, while that clean-up runs or if a library swallowed the first, ends the
    process at once, still 130 and without a traceback: Ctrl-C twice always works."""
    import os
    import signal

    def second(signum: int, frame: object) -> None:
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        finally:
            os._exit(EXIT_INTERRUPTED)

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, second)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, first)


def _sigterm_cleans_up() -> None:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) instead of ending the process on the spot,
    so the clean-up of Ctrl-C runs (worker processes stopped, files closed) and the exit is 143."""
    import signal

    def terminated(signum: int, frame: object) -> None:
        raise Terminated

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminated)


def main() -> None:
    """Console-script entry point: Ctrl-C at any moment (imports included) exits 130 without a
    traceback; SIGTERM likewise with 143."""
    try:
        _second_ctrl_c_ends_at_once()
        _sigterm_cleans_up()
        _run(sys.argv[1:])
    except KeyboardInterrupt as exc:
        code, what = (EXIT_TERMINATED, "terminated") if isinstance(exc, Terminated) else \
            (EXIT_INTERRUPTED, "interrupted")
        try:
            if "--json" in sys.argv[1:]:  # interrupted before a command could print its document
                sys.stdout.write(f'{{"error": "{what}", "exit_code": {code}}}\n')
                sys.stdout.flush()
            sys.stderr.write(f"{what}\n")
        finally:
            raise SystemExit(code) from None


if __name__ == "__main__":
    main()
