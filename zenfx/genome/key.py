"""A network's identity as text: every module's path, class, constructor-level attributes and
parameter shapes, in module order; its sha256 is the structure key.

Nothing here depends on the process (no ``id()``, no salted ``hash()``): a user's file classes are
named by the file's content (``zenfx.loading.files``), so the key is the same in every process,
folder and machine.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe(model: Any) -> list[str]:
    """One line per module in module order: path, class and constructor-level attributes.

    ``extra_repr`` is what torch prints for a module's constructor arguments (channels, kernel,
    stride, padding, groups, bias, eps, ...); memory addresses of functions it may show are cut.
    """
    lines = []
    for path, m in model.named_modules():
        cls = f"{type(m).__module__}.{type(m).__qualname__}"
        try:
            extra = _ADDRESS.sub("", m.extra_repr())
        except Exception:
            extra = ""
        shapes = ";".join(f"{n}:{tuple(p.shape)}" for n, p in m.named_parameters(recurse=False))
        lines.append(f"{path}|{cls}|{extra}|{shapes}")
    return lines




def module_key(model: Any) -> str:
    """The structure key of a built module (16 hex digits)."""
    return hashlib.sha256("\n".join(describe(model)).encode()).hexdigest()[:16]


__all__ = ["describe", "module_key"]
