"""Rank a pool of models: every member proxy scored per model, then each objective aggregated
over the pool (``zenfx score A B C --proxy az``).

``rank_models(["resnet18", "resnet34", net], "az,zen")`` scores each model with the proxies the
objectives need (``zenfx.score``, same options for all) and returns, per objective, each model's
value (an aggregate's is relative to this pool: sum over members of log(rank / N), see
``zenfx.proxies.aggregate``) and the models' order, best first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UsageError
from .proxies.aggregate import Objective, aggregate_scores, parse_objectives
from .proxies.base import get_proxy
from .scoring import ScoreResult, score


@dataclass
class RankResult:
    models: list[str]
    objectives: list[Objective]
    results: list[ScoreResult]
    values: dict[str, list[float]]  # objective name -> one value per model (aggregates: within this pool)
    order: dict[str, list[int]]  # objective name -> model indices, best first
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> str:
        return self.objectives[0].name

    def ranking(self, objective: str | None = None) -> list[str]:
        return [self.models[i] for i in self.order[objective or self.main]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "objectives": [{"name": o.name, "members": list(o.members), "aggregated": o.aggregated}
                           for o in self.objectives],
            "values": {k: list(v) for k, v in self.values.items()},
            "ranking": {k: [self.models[i] for i in v] for k, v in self.order.items()},
            "results": [r.to_dict() for r in self.results],
            "notes": list(self.notes),
        }


def _order(values: Sequence[float], higher_is_better: bool) -> list[int]:
    """Best first; ties keep the models' given order (a stable sort)."""
    keyed = [(-v if higher_is_better else v) if np.isfinite(v) or np.isinf(v) else np.inf for v in values]
    return sorted(range(len(values)), key=lambda i: keyed[i])


def rank_models(models: Sequence[Any], proxy: str | Sequence[str] = "az", *, names: Sequence[str] | None = None,
                **score_kwargs: Any) -> RankResult:
    """Score every model with the proxies ``proxy``'s objectives need and rank the pool by each
    objective. ``score_kwargs`` go to :func:`zenfx.score` (batch_size, repeat, seed, device, ...)."""
    if not models:
        raise UsageError("no model to rank")
    objectives = parse_objectives(proxy)
    needed = list(dict.fromkeys(m for o in objectives for m in o.members))
    results = [score(m, needed, **score_kwargs) for m in models]
    labels = list(names) if names is not None else [r.model for r in results]
    rows = [{k: s.value for k, s in r.scores.items()} for r in results]
    values: dict[str, list[float]] = {}
    order: dict[str, list[int]] = {}
    for o in objectives:
        if o.aggregated:
            vals = [float(v) for v in aggregate_scores(o, rows)]
            hib = True
        else:
            vals = [float(r[o.members[0]]) for r in rows]
            hib = get_proxy(o.members[0]).higher_is_better
        values[o.name] = vals
        order[o.name] = _order(vals, hib)
    notes = []
    if len(models) == 1 and any(o.aggregated for o in objectives):
        notes.append("an aggregate ranks models within the pool scored together: with one model it is 0")
    return RankResult(labels, objectives, results, values, order, notes)


__all__ = ["RankResult", "rank_models"]
