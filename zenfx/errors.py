"""One exception family whose exit codes the CLI maps straight to the process status.

Every failure a user can cause ends as a ZenfxError with a one-line message: the CLI prints the
message and exits with ``exit_code``; the API raises it. The codes are part of the public contract
(README, "Exit codes") and every command keeps them.
"""

from __future__ import annotations

EXIT_INTERNAL = 1  # a zenfx bug: the CLI prints one line naming the exception (ZENFX_DEBUG=1: traceback)
EXIT_USAGE = 2
EXIT_NOT_TRACEABLE = 3
EXIT_NOT_CONVERTIBLE = 4
EXIT_NUMERICAL = 5
EXIT_SEARCH_FAILED = 6  # a search ran, but every candidate failed: nothing it reports was measured
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the shell's convention
EXIT_TERMINATED = 143  # SIGTERM (128 + 15): `kill PID`, a batch system's time-out


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that every clean-up Ctrl-C gets runs for it too:
    a search's worker processes are stopped, not left running after their driver is gone."""


class ZenfxError(Exception):
    """Base class: a user-facing failure with a one-line message and a process exit code."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(ZenfxError):
    """Bad arguments: an unknown option value, a malformed shape, a forbidden kwarg."""

    exit_code = EXIT_USAGE


class UnknownModelError(UsageError):
    """A model spec that resolves to nothing (or to two things)."""


class NotTraceableError(ZenfxError):
    """torch.fx could not trace the model with any of our tracers."""

    exit_code = EXIT_NOT_TRACEABLE


class NotConvertibleError(ZenfxError):
    """The traced graph cannot be rewritten into vanilla-CNN form."""

    exit_code = EXIT_NOT_CONVERTIBLE

    def __init__(self, message: str, *, reasons: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = list(reasons or [])


class NumericalError(ZenfxError):
    """A score came out NaN or infinite (overflow in a deep BN-free net, fp16 range, ...)."""

    exit_code = EXIT_NUMERICAL


class SearchFailedError(ZenfxError):
    """Every candidate of a search failed (the message names the most common error and its count);
    the run folder is written all the same, so the history says what went wrong."""

    exit_code = EXIT_SEARCH_FAILED


class GenomeError(UsageError):
    """A malformed genome file, an edit that does not fit its seed, a genome from another version
    (defined here so that surgery and the space analysis, below the genome package, can raise it)."""


class ShapeError(UsageError):
    """The model cannot run at the requested input size; the message names the layer."""


class OptionError(UsageError):
    """A bad value for one named option of the Python API. The message speaks API (``batch_size must
    be at least 1, got 0``); the CLI shows :meth:`cli_message`, with the matching flag instead
    (``--batch-size must be at least 1, got 0``), so neither side reads the other's vocabulary."""

    def __init__(self, option: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.option = option

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")

    def cli_message(self) -> str:
        text = str(self)
        return self.flag + text[len(self.option):] if text.startswith(self.option) else f"{self.flag}: {text}"
