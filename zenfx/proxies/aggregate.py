"""Rank-aggregated objectives: AZ-NAS's non-linear rank aggregation for any set of proxies.

An *objective* is either one registered proxy (``zen``) or an aggregate of several:

- ``az``: AZ-NAS's four proxies (``az_expressivity``, ``az_progressivity``, ``az_trainability``,
  ``az_complexity``); ``az_clamped``: the same with the covariance eigenvalues clamped at 0
  (``az_*_clamped``), for spaces whose blocks are wider than their input's rank (NATS-SSS);
- ``A+B[+C...]``: any registered proxies, e.g. ``zen+zico``, ``az+zico`` (``az`` expands).

The aggregate of a model is relative to a *pool* of models scored together (AZ-NAS's notebook:
the whole space; its search: every candidate seen so far):

    score(m) = sum over members k of log(rank_k(m) / N)

``rank_k`` is the ascending rank of the member's value within the pool (1 = worst, N = best;
ties share their average rank, ``scipy.stats.rankdata``), after flipping the sign of a member
whose lower values are better. So the best model on every member scores 0 and every score is <= 0;
a model's aggregate changes when the pool changes. A failed value (None or NaN) ranks lowest
(the reference maps NaN to -inf before ranking); -inf is a rank like any other value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np

# Light on purpose (no torch, no numpy at import): the CLI asks ``is_aggregate`` before loading torch.
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "az": ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity"),  # zenfx.proxies.az.AZ_MEMBERS
    # the same with covariance eigenvalues clamped at 0: scorable where a block is wider than its input's rank
    "az_clamped": ("az_expressivity_clamped", "az_progressivity_clamped", "az_trainability_clamped",
                   "az_complexity"),
}


@dataclass(frozen=True)
class Objective:
    """``name`` as written (``az``, ``zen+zico``, ``zen``) and the proxies it needs."""

    name: str
    members: tuple[str, ...]

    @property
    def aggregated(self) -> bool:
        return self.name in ENSEMBLES or "+" in self.name


def is_aggregate(text: str) -> bool:
    key = text.strip().lower()
    return key in ENSEMBLES or "+" in key


def members_of(text: str) -> tuple[str, ...]:
    """The registered proxies an objective needs, each once, in order (``az`` expanded)."""
    from .base import get_proxy

    out: list[str] = []
    for part in text.strip().lower().split("+"):
        part = part.strip()
        if not part:
            raise UsageError(f"empty member in objective {text!r}", hint="write e.g. 'zen+zico' or 'az'")
        names = ENSEMBLES.get(part, (part,))
        for n in names:
            name = get_proxy(n).name
            if name not in out:
                out.append(name)
    return tuple(out)


def parse_objectives(text: str | Sequence[str]) -> list[Objective]:
    """``"zen,az,zen+zico"`` -> one Objective per comma-separated item, each once."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Objective] = []
    for item in items:
        name = item.strip().lower()
        if name and name not in [o.name for o in out]:
            out.append(Objective(name, members_of(name)))
    if not out:
        raise UsageError("no objective given (e.g. 'az', 'zen+zico' or 'zen')")
    return out


def _column(values: Sequence[float | None], higher_is_better: bool) -> np.ndarray:
    import numpy as np

    arr = np.array([-math.inf if v is None else float(v) for v in values], dtype=np.float64)
    if not higher_is_better:
        arr = -arr
    arr[np.isnan(arr)] = -math.inf  # a failure ranks lowest, whatever the member's direction
    return arr


def rank_aggregate(columns: Mapping[str, Sequence[float | None]],
                   higher_is_better: Mapping[str, bool] | None = None) -> np.ndarray:
    """Sum over members of log(rank / N) within the pool (the columns' common length N)."""
    import numpy as np
    from scipy.stats import rankdata

    if not columns:
        raise UsageError("rank aggregation needs at least one member")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise UsageError(f"members hold different pool sizes {sorted(lengths)}")
    n = lengths.pop()
    total = np.zeros(n, dtype=np.float64)
    if n == 0:
        return total
    for name, vals in columns.items():
        hib = True if higher_is_better is None else higher_is_better.get(name, True)
        total += np.log(rankdata(_column(vals, hib), method="average") / n)
    return total


def aggregate_scores(objective: Objective | str, rows: Sequence[Mapping[str, float | None]]) -> np.ndarray:
    """The aggregate of ``objective`` over a pool: ``rows[i][member]`` is model i's value of a member."""
    from .base import get_proxy

    obj = objective if isinstance(objective, Objective) else Objective(objective, members_of(objective))
    cols = {m: [r.get(m) for r in rows] for m in obj.members}
    return rank_aggregate(cols, {m: get_proxy(m).higher_is_better for m in obj.members})


__all__ = ["ENSEMBLES", "Objective", "aggregate_scores", "is_aggregate", "members_of", "parse_objectives",
           "rank_aggregate"]
