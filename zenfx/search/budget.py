"""Search budgets: unit parsing and the cheap-first feasibility check of one candidate.

A budget is an upper bound on one figure of a candidate. The figures cost very different amounts
to compute -- params need only the built module, MACs and activation memory a traced graph,
depth the VCNN conversion, latency the per-operator predictor -- so :func:`check` computes them in
that order and stops at the first bound broken: a rejected candidate costs no scoring and is
recorded with the budget that rejected it (and every figure computed up to that point).

Units (one-line :class:`BudgetError` for anything else):

======== ============================================================ =================
budget   accepted                                                     stored as
======== ============================================================ =================
params   ``1M``, ``1.5m``, ``500k``, ``2G``/``2B``, ``1e6``, ``1000000`` count
macs     same suffixes (multiply-accumulates of one image, not FLOPs)  count
latency  ``0.5ms``, ``500us``/``500µs``, ``2s``, ``100ns`` (unit required) seconds
memory   ``64MB``, ``1.5GB``, ``512kB`` (powers of 1000), ``64MiB``,    bytes
         ``1GiB`` (powers of 1024), ``100B`` (unit required)
======== ============================================================ =================
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

_COUNT_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_BYTE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"

# The order figures are computed and checked in: cheapest first.
ORDER = ("params", "macs", "depth", "memory", "latency")


class BudgetError(UsageError):
    """A budget that cannot be parsed (bad number or unit)."""


def _number(text: str, what: str, pattern: str) -> tuple[float, str]:
    m = re.fullmatch(_NUM + r"\s*" + pattern, str(text).strip())
    if not m:
        raise BudgetError(f"--budget-{what} '{text}' is not understood", hint=_HINTS[what])
    value = float(m.group(1))
    if not math.isfinite(value) or value <= 0:
        raise BudgetError(f"--budget-{what} '{text}' must be a positive number", hint=_HINTS[what])
    return value, (m.group(2) or "") if m.re.groups >= 2 else ""


_HINTS = {
    "params": "write e.g. 1M, 500k, 2.5M or 1000000",
    "macs": "write multiply-accumulates of one image, e.g. 400M or 1.2G (FLOPs = 2 x MACs)",
    "latency": "write e.g. 0.5ms, 500us or 0.002s",
    "memory": "write e.g. 64MB (10^6 bytes) or 64MiB (2^20 bytes)",
}


def _given_number(text: Any, what: str) -> float | None:
    """A budget given as a number (the Python API) rather than text: checked positive and finite."""
    if not isinstance(text, (int, float)) or isinstance(text, bool):
        return None
    if not (math.isfinite(text) and text > 0):
        raise BudgetError(f"--budget-{what} {text} must be a positive number", hint=_HINTS[what])
    return float(text)


def parse_count(text: str | int | float, what: str = "params") -> int:
    """``'1M'`` -> 1_000_000; ``'400M'`` -> 400_000_000; plain numbers pass through."""
    if (n := _given_number(text, what)) is not None:
        return int(n)
    raw = str(text).strip()
    if re.search(r"flop", raw, re.I):
        raise BudgetError(f"--budget-{what} '{text}': budgets count MACs, not FLOPs", hint=_HINTS["macs"])
    value, suffix = _number(re.sub(r"(?i)\s*macs?$", "", raw), what, r"([kKmMgGbBtT]?)")
    return int(round(value * _COUNT_SUFFIX[suffix.lower()]))


def parse_latency(text: str | float) -> float:
    """``'0.5ms'`` -> 0.0005 (seconds). A bare number is refused: ms or s is too easy to confuse."""
    if (n := _given_number(text, "latency")) is not None:
        return n
    value, unit = _number(str(text), "latency", r"(s|ms|us|µs|μs|ns)?")
    if not unit:
        raise BudgetError(f"--budget-latency '{text}' needs a unit", hint=_HINTS["latency"])
    return value * _TIME_UNITS[unit]


def parse_memory(text: str | int | float) -> int:
    """``'64MB'`` -> 64_000_000 bytes; ``'64MiB'`` -> 67_108_864."""
    if (n := _given_number(text, "memory")) is not None:
        return int(n)
    value, unit = _number(str(text), "memory", r"([kKmMgGtT]?[iI]?[bB])?")
    if not unit:
        raise BudgetError(f"--budget-memory '{text}' needs a unit", hint=_HINTS["memory"])
    return int(round(value * _BYTE_UNITS[unit.lower()]))


def parse_depth(value: int | str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise BudgetError(f"--max-depth '{value}' must be a whole number of convolutions") from None
    if n < 1:
        raise BudgetError(f"--max-depth must be at least 1, got {n}")
    return n


def fmt_count(n: float) -> str:
    for div, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.4g}{s}"
    return f"{n:.4g}"


def fmt_bytes(n: float) -> str:
    for div, s in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(n) >= div:
            return f"{n / div:.4g}{s}"
    return f"{n:.0f}B"


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.4g}s"
    if s >= 1e-3:
        return f"{s * 1e3:.4g}ms"
    return f"{s * 1e6:.4g}us"


def fmt_figure(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name == "latency":
        return fmt_seconds(value)
    if name == "memory":
        return fmt_bytes(value)
    if name == "depth":
        return str(int(value))
    return fmt_count(value)


@dataclass(frozen=True)
class Budgets:
    """Upper bounds (None = unbounded). Latency is predicted per batch of ``latency_batch`` on
    ``latency_device``/``latency_dtype`` by zenfx.cost.predictor, never timed per candidate;
    memory is the activation peak of one forward pass at that batch size in float32."""

    params: int | None = None
    macs: int | None = None
    depth: int | None = None
    memory: int | None = None
    latency: float | None = None
    latency_device: str = "cpu"
    latency_dtype: str = "float32"
    latency_batch: int = 1

    @classmethod
    def parse(cls, *, params: Any = None, macs: Any = None, latency: Any = None, memory: Any = None,
              max_depth: Any = None, latency_device: str = "cpu", latency_dtype: str = "float32",
              latency_batch: int = 1) -> Budgets:
        if int(latency_batch) < 1:
            raise BudgetError(f"--latency-batch must be at least 1, got {latency_batch}")
        return cls(params=None if params is None else parse_count(params, "params"),
                   macs=None if macs is None else parse_count(macs, "macs"),
                   depth=parse_depth(max_depth),
                   memory=None if memory is None else parse_memory(memory),
                   latency=None if latency is None else parse_latency(latency),
                   latency_device=str(latency_device), latency_dtype=str(latency_dtype),
                   latency_batch=int(latency_batch))

    def limits(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in ORDER}

    def active(self) -> list[str]:
        return [k for k in ORDER if getattr(self, k) is not None]

    def to_dict(self) -> dict[str, Any]:
        return {**self.limits(), "latency_device": self.latency_device, "latency_dtype": self.latency_dtype,
                "latency_batch": self.latency_batch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Budgets:
        return cls(**{k: d.get(k) for k in (*ORDER, "latency_device", "latency_dtype", "latency_batch")
                      if k in d})

    def describe(self) -> str:
        parts = [f"{k} <= {fmt_figure(k, v)}" for k, v in self.limits().items() if v is not None]
        return ", ".join(parts) if parts else "no budget"


@dataclass
class Verdict:
    """Figures computed so far and the first budget broken (None: within every budget)."""

    figures: dict[str, float | None]
    rejected_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.rejected_by is None

    def message(self, budgets: Budgets) -> str:
        if self.rejected_by is None:
            return "within budget"
        k = self.rejected_by
        return (f"{k} {fmt_figure(k, self.figures.get(k))} > budget "
                f"{fmt_figure(k, getattr(budgets, k))}")


def check(budgets: Budgets, figure: Callable[[str], float | None], *, always: tuple[str, ...] = ("params",),
          stop_early: bool = True) -> Verdict:
    """Compute figures cheapest first and stop at the first broken budget.

    ``figure(name)`` computes one figure (params, macs, depth, memory, latency). Figures with no
    budget are computed only when named in ``always`` (params is nearly free and useful in the
    history). With ``stop_early=False`` every budgeted figure is computed even after a break (the
    seed's report, where a user wants every figure over budget)."""
    figures: dict[str, float | None] = {}
    first: str | None = None
    for name in ORDER:
        limit = getattr(budgets, name)
        if limit is None and name not in always:
            continue
        value = figure(name)
        figures[name] = value
        if limit is not None and value is not None and value > limit and first is None:
            first = name
            if stop_early:
                break
    return Verdict(figures, first)


__all__ = ["Budgets", "BudgetError", "ORDER", "Verdict", "check", "fmt_bytes", "fmt_count", "fmt_figure",
           "fmt_seconds", "parse_count", "parse_depth", "parse_latency", "parse_memory"]
