"""Calibration of the latency predictor: what an eager forward costs *around* the timed operators.

The predictor times each operator's own call inside a graph run. The eager ``model(x)`` a user
runs also pays for what lies between those calls: each container or block module's ``__call__``
(hook checks, the ``forward`` frame), the Python of the block's ``forward`` between two ops
(attribute look-ups, the ``Sequential`` loop) and the root call itself. On big networks that is
noise; on the small, shrunk networks a latency budget drives a search to, it is a large share of
the time (benchmarks/bench_latency_calibration.py measures it).

The overhead model is linear in two counts a traced graph gives for free::

    eager  ~=  sum of operator entries  +  per_op_s * ops  +  per_call_s * module_calls

``ops``: the graph's costed nodes; ``module_calls``: the module calls the eager forward makes that
no timed operator contains (every container/block call recorded in fx's ``nn_module_stack``, plus
the root call). Both coefficients are measured once per latency table on the user's own machine by
a probe -- two small networks of tiny operators, one flat and one nested, with the same operators:
the flat one's gap (eager minus its operators' sum) gives mostly ``per_op_s``, the difference
between the two gives ``per_call_s``. The result is stored in the table, so every prediction made
from the table is deterministic (nothing is re-measured per process).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

PROBE_UNITS = 24  # units of (relu, relu, add) per probe network: ~72 tiny ops, a fraction of a millisecond
PROBE_REPEATS = 3  # median over interleaved repeats: a burst of contention hits one repeat, not all
PROBE_SHAPE = (8, 4, 4)  # per-image input of the probe: operators that cost little beyond their call


@dataclass(frozen=True)
class OverheadCounts:
    """What the eager forward pays for beyond the timed operators: one per op, one per module call."""

    ops: int
    module_calls: int


@dataclass(frozen=True)
class Calibration:
    """Seconds the eager forward adds per costed operator and per untimed module call (>= 0 each)."""

    per_op_s: float
    per_call_s: float
    probe: dict[str, Any]

    def overhead_s(self, counts: OverheadCounts) -> float:
        return self.per_op_s * counts.ops + self.per_call_s * counts.module_calls

    def to_dict(self) -> dict[str, Any]:
        return {"per_op_s": self.per_op_s, "per_call_s": self.per_call_s, "probe": dict(self.probe)}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration | None:
        """The stored calibration, or None when absent or malformed (then it is measured again)."""
        if not isinstance(data, dict):
            return None
        try:
            op, call = float(data["per_op_s"]), float(data["per_call_s"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (op >= 0 and call >= 0) or op != op or call != call:
            return None
        probe = data.get("probe")
        return cls(op, call, dict(probe) if isinstance(probe, dict) else {})


# --------------------------------------------------------------------------- counting


def overhead_counts(gm: fx.GraphModule, costed: int) -> OverheadCounts:
    """``costed`` operators, and the module calls of the eager forward that no timed op contains.

    A leaf ``call_module`` node is timed with its own ``__call__``; every other entry of fx's
    ``nn_module_stack`` (``layer1.0``, ``layer1.0.relu@2`` for a second call) is a container or
    block call, timed by nobody. A graph without that record (built by hand, or by another tracer)
    falls back to the distinct parents of its nodes' module paths. The root call adds one.
    """
    calls: set[str] = set()
    leaves: set[str] = set()
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            calls.update(str(k) for k in stack)
            if node.op == "call_module":
                leaves.add(str(list(stack)[-1]))
    if not calls:
        calls, leaves = _parents_of_targets(gm)
    return OverheadCounts(int(costed), len(calls - leaves) + 1)


def _parents_of_targets(gm: fx.GraphModule) -> tuple[set[str], set[str]]:
    """Module paths and their parents, from ``call_module`` targets alone (no stack record)."""
    calls: set[str] = set()
    leaves: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            path = str(node.target)
            leaves.add(path)
            parts = path.split(".")
            calls.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return calls, leaves


# --------------------------------------------------------------------------- the probe


class _ProbeBlock(nn.Module):
    """One unit of the nested probe: two module calls and a functional add, as a residual block has."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.ReLU()
        self.b = nn.Sequential(nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + x


class _FlatProbe(nn.Module):
    """The same operators as the nested probe, called from one forward (no container calls)."""

    def __init__(self, units: int) -> None:
        super().__init__()
        self.a = nn.ModuleList(nn.ReLU() for _ in range(units))
        self.b = nn.ModuleList(nn.ReLU() for _ in range(units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for a, b in zip(self.a, self.b, strict=True):
            x = b(a(x)) + x
        return x


def probe_networks(units: int = PROBE_UNITS) -> dict[str, nn.Module]:
    """The flat and the nested probe: the same ``3 * units`` operators, ``1`` vs ``2 * units + 1`` calls."""
    return {"flat": _FlatProbe(units), "nested": nn.Sequential(*(_ProbeBlock() for _ in range(units)))}


Gap = Callable[[nn.Module], tuple[float, OverheadCounts]]  # eager minus operator sum of a probe, its counts


def measure_calibration(gap: Gap) -> Calibration:
    """Run the probe (``gap`` times one probe network for the table's setting: zenfx.cost.predictor
    supplies it) and solve for the two coefficients.

    Both probes have the same operators, so ``nested gap - flat gap`` is ``2 * units`` module calls;
    the flat gap less its one root call is ``3 * units`` operators' worth of in-between Python.
    Negative estimates (noise, or a device where in-context timing already includes more than the
    eager run pays, like a synchronising GPU timer) are clamped to 0: calibration never lowers a
    prediction.
    """
    nets = probe_networks()
    gaps: dict[str, list[float]] = {"flat": [], "nested": []}
    counts: dict[str, OverheadCounts] = {}
    for _ in range(PROBE_REPEATS):
        for name, net in nets.items():
            value, counts[name] = gap(net)
            gaps[name].append(value)
    flat, nested = statistics.median(gaps["flat"]), statistics.median(gaps["nested"])
    extra_calls = counts["nested"].module_calls - counts["flat"].module_calls
    per_call = max(0.0, (nested - flat) / extra_calls)
    per_op = max(0.0, (flat - per_call * counts["flat"].module_calls) / counts["flat"].ops)
    probe = {"flat_gap_s": flat, "nested_gap_s": nested, "units": PROBE_UNITS, "repeats": PROBE_REPEATS,
             "flat_counts": [counts["flat"].ops, counts["flat"].module_calls],
             "nested_counts": [counts["nested"].ops, counts["nested"].module_calls]}
    return Calibration(per_op, per_call, probe)


__all__ = ["PROBE_SHAPE", "Calibration", "Gap", "OverheadCounts", "measure_calibration", "overhead_counts",
           "probe_networks"]
