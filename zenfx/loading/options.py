"""What a user types besides the model: constructor arguments and the input size."""

from __future__ import annotations

import ast
from typing import Any

from ..errors import UsageError

DEFAULT_INPUT_SIZE: tuple[int, int, int] = (3, 224, 224)

InputSize = tuple[int, int, int]


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """Parse repeatable ``key=value`` strings; every value must be a Python literal.

    One rule, no guessing: ``48``, ``0.5``, ``True``, ``None``, ``(1, 2)``, ``[1, 2]``, ``{'a': 1}``
    and quoted strings (``'"relu"'`` in a shell) are accepted; anything else (``width=abc``,
    ``width=[1,2``) is refused with the quoting to use, because a silent fallback to a string turns
    a typo into a confusing failure deep inside the constructor.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"constructor argument '{item}' is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise UsageError(f"constructor argument name '{key}' is not a Python identifier")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            quoted = "'\"" + raw + "\"'" if '"' not in raw else "\"'" + raw + "'\""
            raise UsageError(
                f"-k {key}={raw}: {raw!r} is not a Python literal (a number, True/False/None, a tuple, list "
                f"or dict, or a quoted string); for the string {raw!r} write -k {key}={quoted}"
            ) from None
    return out


def parse_input_size(input_size: str | None = None, resolution: int | None = None,
                     default: InputSize = DEFAULT_INPUT_SIZE) -> InputSize:
    """``--input-size C,H,W`` wins over ``--resolution R``; otherwise the model's default."""
    if input_size:
        parts = [p for p in input_size.replace("x", ",").split(",") if p.strip()]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise UsageError(f"--input-size '{input_size}' must be C,H,W integers") from None
        if len(dims) != 3 or min(dims) <= 0:
            raise UsageError(f"--input-size '{input_size}' must be three positive integers C,H,W")
        return dims  # type: ignore[return-value]
    if resolution is not None:
        if resolution <= 0:
            raise UsageError(f"--resolution must be positive, got {resolution}")
        return (default[0], resolution, resolution)
    return default


def refuse_pretrained(kwargs: dict[str, Any]) -> None:
    for key in ("pretrained", "weights", "weights_backbone", "pretrained_backbone"):
        if key in kwargs and kwargs[key] not in (None, False, "None", ""):
            raise UsageError(
                f"zenfx never downloads weights (got {key}={kwargs[key]!r}); "
                "drop that argument: zero-shot proxies re-initialise weights anyway"
            )
