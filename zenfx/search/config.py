"""A search's configuration: what fixes its history (the identity a resume must match) and what
only bounds or speeds it (candidates, time limit, workers, backend), which a resume may change."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, fields
from typing import Any

# Laptop-CPU defaults. The paper's CIFAR search: population 512, 480,000 proposals, batch 64, on GPUs.
DEFAULT_POPULATION = 64
DEFAULT_CANDIDATES = 500
DEFAULT_ROUND = 16
DEFAULT_BATCH = 64
EDIT_KINDS = ("width", "kernel", "depth")
# Levers of the algorithm (docs/search.md, "Against the reference"): the parent is the best of
# DEFAULT_TOURNAMENT uniform draws from the population (1: the reference's uniform choice), an edit's
# kind is drawn with DEFAULT_KIND_WEIGHTS (None: uniform over the kinds).
DEFAULT_TOURNAMENT = 8
DEFAULT_KIND_WEIGHTS: dict[str, float] | None = {"depth": 2.0}
# Crowning: a scored child whose one-repeat score beats the best's crowned score is rescored with
# this many repeats and crowned best only if the mean beats it (0: the best is the best single draw).
DEFAULT_CROWN_REPEATS = 0
# "fixed": every candidate is scored on the same random draw (weights and inputs from --seed);
# "per-candidate": each structure on its own draw, seeded by (--seed, its structure key).
SCORE_DRAWS = ("fixed", "per-candidate")
DEFAULT_SCORE_DRAWS = "fixed"
# What a config written before a lever existed meant (a resume continues it exactly as it ran).
LEGACY = {"tournament": 1, "kind_weights": None, "crown_repeats": 0, "score_draws": "fixed"}

# Fields that do not change what the search computes: a resume may change them.
RUN_ONLY = ("candidates", "time_limit", "cpu_limit", "workers", "backend", "ray_address")


@dataclass
class SearchConfig:
    seed_genome: dict[str, Any]  # the starting genome (spec, kwargs, input size, edits), after any shrink
    seed_spec: str = ""  # what the user typed
    proxy: str = "zen"
    batch_size: int = DEFAULT_BATCH
    bn_stat: str = "official"
    mixup_gamma: float = 1e-2
    num_classes: int = 1000
    data: str | None = None
    budgets: dict[str, Any] = field(default_factory=dict)
    population: int = DEFAULT_POPULATION
    round_size: int = DEFAULT_ROUND
    seed: int = 0
    kinds: tuple[str, ...] = EDIT_KINDS
    width_choices: dict[str, list[int]] | None = None
    shrink: dict[str, Any] | None = None  # how the seed was shrunk to fit (None: it fitted)
    mutator: str | None = None  # a custom mutation operator's name (None: zenfx.mutate's graph edits)
    device: str = "cpu"  # scoring device: part of the identity (a GPU's float sums differ from a CPU's)
    tournament: int = DEFAULT_TOURNAMENT  # parent: best of this many uniform draws (1: uniform, the reference)
    kind_weights: dict[str, float] | None = field(default_factory=lambda: _copy(DEFAULT_KIND_WEIGHTS))
    crown_repeats: int = DEFAULT_CROWN_REPEATS  # rescoring before a new best is crowned (0: no rescoring)
    score_draws: str = DEFAULT_SCORE_DRAWS  # one scoring draw for all, or one per structure (SCORE_DRAWS)
    # run-only
    candidates: int | None = DEFAULT_CANDIDATES
    time_limit: float | None = None
    cpu_limit: float | None = None  # CPU seconds of the workers and the main process together
    workers: int = 1
    backend: str = "local"
    ray_address: str | None = None

    def identity(self) -> dict[str, Any]:
        """What fixes the history. A file seed counts by its content: where the file lies (its paths
        in the genome) is not identity, so the same run resumed from another folder or machine, or
        run twice in two folders, writes the same history. A lever at the value it had before it
        existed (``LEGACY``) is left out, so a run written before the lever keeps its identity (its
        history header) and resumes."""
        d = self.to_dict()
        for k in RUN_ONLY:
            d.pop(k, None)
        d["seed_genome"] = _placeless(d["seed_genome"])
        if isinstance(d.get("shrink"), dict) and isinstance(d["shrink"].get("genome"), dict):
            d["shrink"] = {**d["shrink"], "genome": _placeless(d["shrink"]["genome"])}
        for k, v in LEGACY.items():
            if d.get(k) == v:
                d.pop(k, None)
        return d

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["kinds"] = list(self.kinds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "seed_genome" in d:  # a stored config: a lever it does not name did not exist when it ran
            for k, v in LEGACY.items():
                kw.setdefault(k, v)
        if "kinds" in kw:
            kw["kinds"] = tuple(kw["kinds"])
        return cls(**kw)

    def document(self) -> dict[str, Any]:
        """config.json: the config plus the versions that produced it (not part of the identity)."""
        import torch

        import zenfx

        return {"format": "zenfx-search-config", "version": 1, **self.to_dict(),
                "versions": {"zenfx": zenfx.__version__, "torch": torch.__version__,
                             "python": platform.python_version()}}


def _placeless(genome: dict[str, Any]) -> dict[str, Any]:
    """A genome dict with its seed file named by content only (no paths)."""
    sf = genome.get("seed_file")
    if not isinstance(sf, dict):
        return genome
    return {**genome, "seed_file": {"sha256": sf.get("sha256")}}


def _copy(v: dict[str, float] | None) -> dict[str, float] | None:
    return None if v is None else dict(v)


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Identity keys whose values differ (a resume refuses to continue if any)."""
    keys = sorted(set(old) | set(new))
    return [k for k in keys if _norm(old.get(k)) != _norm(new.get(k))]


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items()}
    return v


__all__ = ["DEFAULT_BATCH", "DEFAULT_CANDIDATES", "DEFAULT_CROWN_REPEATS", "DEFAULT_KIND_WEIGHTS",
           "DEFAULT_POPULATION", "DEFAULT_ROUND", "DEFAULT_SCORE_DRAWS", "DEFAULT_TOURNAMENT", "EDIT_KINDS", "LEGACY",
           "RUN_ONLY", "SCORE_DRAWS", "SearchConfig", "differences"]
