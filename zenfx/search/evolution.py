"""The evolutionary algorithm (Zen-NAS Algorithm 2 as the reference ``evolution_search.py`` runs it),
made reproducible: pure bookkeeping, no I/O, no scoring.

Reference behaviour kept: population of at most P scored candidates (the seed itself is not a
member); the parent is the seed while the population holds at most 10 members, else a uniformly
random member; a child of the seed gets one edit, a child of a member two; every scored child is
inserted and the lowest-scoring member is dropped once the population exceeds P (ties: the
earliest, as ``list.index(min(...))`` does).

zenfx's changes:

* **rounds**: K children are proposed from the population *as it stood at the round's start*, scored
  in any order by any number of workers, then applied sorted by proposal index. The history is
  therefore a function of the seed and K alone, never of the worker count or completion order.
* **dedup**: a child whose structure key was already proposed (scored, rejected or failed) is
  redrawn, up to ``MAX_REDRAWS`` times, so no structure is ever scored twice.
* **seeded**: one ``random.Random`` drives parent choice and mutation; its state is checkpointed.
* **small populations**: the seed stays the parent while the population holds at most
  ``min(10, P - 1)`` members (the reference: 10). With P <= 10 the reference's rule never lets a
  member be a parent, so every child is the seed plus one edit and the search cannot go further
  (measured with P = 8: 1,605 redraws and 25 duplicates in 96 proposals). Identical for P > 10.
* **tournament parents** (``pick_parent``): a member parent is the best of ``tournament`` uniform
  draws (1: the reference's uniform draw, the RNG used identically). With P = 512 the reference's
  population does not fill for thousands of candidates and a uniform parent is a random walk.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SEED_PARENT_UNTIL = 10  # the parent is the seed while the population has at most this many members (P > 10)


def seed_is_parent(members: int, population_size: int) -> bool:
    """Whether the next parent is the seed: while the population holds at most min(10, P - 1) members."""
    return members <= min(SEED_PARENT_UNTIL, population_size - 1)
MAX_REDRAWS = 50


@dataclass
class Member:
    """A scored candidate kept in the population."""

    id: int
    score: float
    genome: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None
    crown: float | None = None  # mean score over the crowning repeats, when it was rescored to be crowned
    # a rank-aggregated objective: the members' values (None for -inf/NaN), from which ``score`` (the
    # aggregate within the current pool) is recomputed every round
    values: dict[str, float | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "score": self.score, "genome": self.genome, "figures": dict(self.figures),
             "parent": self.parent}
        if self.crown is not None:
            d["crown"] = self.crown
        if self.values is not None:
            d["values"] = dict(self.values)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Member:
        return cls(int(d["id"]), float(d["score"]), dict(d["genome"]), dict(d.get("figures") or {}),
                   d.get("parent"), None if d.get("crown") is None else float(d["crown"]),
                   None if d.get("values") is None else dict(d["values"]))


@dataclass
class Proposal:
    """One child: its id (= its row in the history), parent id (0 = the seed), genome and the edits
    it added to its parent. ``error`` is set when mutation itself failed; ``duplicate`` when no
    unseen structure was found within ``MAX_REDRAWS`` draws."""

    id: int
    parent: int
    genome: Any  # zenfx Genome
    edits: list[dict[str, Any]]
    key: str | None
    redraws: int = 0
    error: str | None = None
    duplicate: bool = False


@dataclass
class Counters:
    proposed: int = 0  # children proposed (history rows other than the seed)
    scored: int = 0
    rejected: int = 0
    failed: int = 0
    duplicates: int = 0  # proposals given up after MAX_REDRAWS redraws
    redraws: int = 0  # draws discarded because their structure had been seen
    rounds: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Counters:
        return cls(**{k: int(v) for k, v in d.items() if k in cls.__dataclass_fields__})


class Population:
    """At most ``size`` members; insertion drops the lowest score beyond that."""

    def __init__(self, size: int, members: Sequence[Member] = ()) -> None:
        if size < 1:
            raise ValueError("population size must be at least 1")
        self.size = int(size)
        self.members: list[Member] = list(members)

    def __len__(self) -> int:
        return len(self.members)

    def insert(self, m: Member) -> Member | None:
        """Add ``m``; return the member dropped (possibly ``m`` itself), if any."""
        self.members.append(m)
        if len(self.members) > self.size:
            scores = [x.score for x in self.members]
            return self.members.pop(scores.index(min(scores)))
        return None

    def rerank(self, score_of: Callable[[list[Member]], Sequence[float]]) -> list[Member]:
        """A rank-aggregated objective: every member's score recomputed within the pool (all members,
        the round's new ones included), then the lowest dropped (ties: the earliest) until at most
        ``size`` remain. Returns the members dropped."""
        for m, s in zip(self.members, score_of(self.members), strict=True):
            m.score = float(s)
        dropped = []
        while len(self.members) > self.size:
            scores = [x.score for x in self.members]
            dropped.append(self.members.pop(scores.index(min(scores))))
        return dropped

    def best(self) -> Member | None:
        if not self.members:
            return None
        scores = [x.score for x in self.members]
        return self.members[scores.index(max(scores))]

    def median_score(self) -> float | None:
        if not self.members:
            return None
        s = sorted(x.score for x in self.members)
        n = len(s)
        return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def rng_state_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_json(state: Sequence[Any]) -> random.Random:
    rng = random.Random()
    version, internal, gauss = state
    rng.setstate((int(version), tuple(int(x) for x in internal), gauss))
    return rng


def pick_parent(snapshot: Sequence[Member], rng: random.Random, tournament: int = 1) -> Member:
    """A uniformly random member (``tournament`` 1: the reference's rule, the RNG drawn once), else the
    best of ``tournament`` uniform draws (with replacement; ties: the first drawn). The pressure then
    does not depend on the population size: with P = 512 a population that never fills is not a
    random walk."""
    if tournament <= 1:
        return snapshot[rng.randrange(len(snapshot))]
    best: Member | None = None
    for _ in range(tournament):
        m = snapshot[rng.randrange(len(snapshot))]
        if best is None or m.score > best.score:
            best = m
    assert best is not None
    return best


def propose_round(*, k: int, next_id: int, population: Population, seed_genome: Any, rng: random.Random,
                  mutate: Callable[[Any, random.Random, int], Any], key_of: Callable[[Any], str],
                  seen: set[str], genome_from_dict: Callable[[dict[str, Any]], Any],
                  counters: Counters, tournament: int = 1) -> list[Proposal]:
    """K children from the population as it stands now (the caller applies none of them before the
    round ends). ``seen`` gains every key proposed. Exceptions from ``mutate`` / ``key_of`` become
    proposals with ``error`` set, recorded as failed by the caller; the RNG has advanced
    identically whatever happened, so the run stays reproducible."""
    snapshot = list(population.members)
    out: list[Proposal] = []
    for j in range(k):
        pid = next_id + j
        redraws = 0
        prop: Proposal | None = None
        while prop is None:
            if seed_is_parent(len(snapshot), population.size):
                parent_id, parent, n = 0, seed_genome, 1
            else:
                m = pick_parent(snapshot, rng, tournament)
                parent_id, parent, n = m.id, genome_from_dict(m.genome), 2
            try:
                child = mutate(parent, rng, n)
                key = key_of(child)
            except Exception as exc:  # a broken edit must not end the run
                prop = Proposal(pid, parent_id, None, [], None, redraws, error=one_line(exc))
                break
            edits = [e.to_dict() for e in child.edits[len(parent.edits):]]
            if key not in seen:
                prop = Proposal(pid, parent_id, child, edits, key, redraws)
            elif redraws >= MAX_REDRAWS:
                prop = Proposal(pid, parent_id, child, edits, key, redraws, duplicate=True)
            else:
                redraws += 1
        counters.redraws += prop.redraws
        if prop.key is not None:
            seen.add(prop.key)
        out.append(prop)
    return out


def one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(float(x))


__all__ = ["Counters", "MAX_REDRAWS", "Member", "Population", "Proposal", "SEED_PARENT_UNTIL", "finite",
           "one_line", "pick_parent", "propose_round", "rng_from_json", "rng_state_to_json", "seed_is_parent"]
