"""The evolution's bookkeeping (zenfx.search.evolution) on toy genomes: who is the parent (the
reference's rule, and the small-population change), how many edits a child gets, the population's
insertion and drop order, dedup by redraws, and reproducibility from the RNG alone."""

from __future__ import annotations

import random

import pytest

from zenfx.search.evolution import (
    MAX_REDRAWS,
    Counters,
    Member,
    Population,
    propose_round,
    rng_from_json,
    rng_state_to_json,
    seed_is_parent,
)


class E(int):
    """An edit (propose_round records ``edit.to_dict()``)."""

    def to_dict(self):
        return int(self)


class Toy:
    """A genome: a tuple of edits; a child appends ``n`` random edits."""

    def __init__(self, edits=()):
        self.edits = list(edits)

    def to_dict(self):
        return {"edits": list(self.edits)}


def mutate(parent, rng, n):
    return Toy([*parent.edits, *[E(rng.randrange(1000)) for _ in range(n)]])


def key_of(g):
    return ",".join(map(str, g.edits))


def _population(size, members):
    return Population(size, [Member(i + 1, float(i), {"edits": [100 + i]}) for i in range(members)])


def _propose(pop, k=4, seed=0, mutate_fn=mutate, seen=None):
    return propose_round(k=k, next_id=1, population=pop, seed_genome=Toy(), rng=random.Random(seed),
                         mutate=mutate_fn, key_of=key_of, seen=set() if seen is None else seen,
                         genome_from_dict=lambda d: Toy(d["edits"]), counters=Counters())


@pytest.mark.parametrize("size,members,seed_parent", [(512, 0, True), (512, 10, True), (512, 11, False),
                                                      (64, 10, True), (11, 10, True), (11, 11, False),
                                                      (8, 7, True), (8, 8, False), (1, 0, True), (1, 1, False)])
def test_the_seed_is_the_parent_until_the_population_holds_min_10_p_minus_1(size, members, seed_parent):
    assert seed_is_parent(members, size) is seed_parent
    props = _propose(_population(size, members))
    if seed_parent:  # the reference: a child of the seed gets one edit
        assert all(p.parent == 0 and len(p.edits) == 1 for p in props)
    else:  # a child of a member gets two
        assert all(p.parent >= 1 and len(p.edits) == 2 for p in props)


def test_a_small_population_moves_past_the_seed():
    """P = 8 under the reference's rule (seed parent while <= 10 members) would never pick a member."""
    pop = Population(8)
    rng, seen, counters, depth = random.Random(1), set(), Counters(), 0
    for r in range(6):
        props = propose_round(k=4, next_id=1 + 4 * r, population=pop, seed_genome=Toy(), rng=rng, mutate=mutate,
                              key_of=key_of, seen=seen, genome_from_dict=lambda d: Toy(d["edits"]),
                              counters=counters)
        for p in props:
            pop.insert(Member(p.id, float(sum(p.genome.edits)), p.genome.to_dict(), parent=p.parent))
            depth = max(depth, len(p.genome.edits))
    assert depth >= 3  # members became parents, and their children parents in turn


def test_insertion_drops_the_lowest_score_and_the_earliest_on_ties():
    pop = Population(3, [Member(1, 5.0, {}), Member(2, 1.0, {}), Member(3, 1.0, {})])
    dropped = pop.insert(Member(4, 3.0, {}))
    assert dropped.id == 2 and [m.id for m in pop.members] == [1, 3, 4]
    assert pop.insert(Member(5, 0.5, {})).id == 5  # a child worse than all is dropped itself
    assert pop.best().id == 1 and pop.median_score() == 3.0


def test_a_seen_structure_is_redrawn_and_given_up_after_max_redraws():
    seen = set()
    first = _propose(Population(64), k=1, seed=3, seen=seen)[0]
    assert first.key in seen and not first.duplicate
    again = _propose(Population(64), k=1, seed=3, seen=seen)[0]  # same RNG: same first draw, now seen
    assert again.redraws >= 1 and again.key != first.key and not again.duplicate

    def always_the_same(parent, rng, n):
        rng.random()
        return Toy([E(7)])

    stuck = _propose(Population(64), k=1, seed=0, mutate_fn=always_the_same, seen={"7"})[0]
    assert stuck.duplicate and stuck.redraws == MAX_REDRAWS


def test_a_failing_mutation_is_a_proposal_with_an_error_and_the_rng_stays_reproducible():
    def flaky(parent, rng, n):
        if rng.random() < 0.5:
            raise ValueError("no edit fits")
        return mutate(parent, rng, n)

    a, b = _propose(Population(64), k=8, seed=5, mutate_fn=flaky), _propose(Population(64), k=8, seed=5,
                                                                             mutate_fn=flaky)
    assert any(p.error == "ValueError: no edit fits" for p in a)
    assert [(p.error, p.key) for p in a] == [(p.error, p.key) for p in b]


def test_the_rng_state_round_trips_through_json():
    import json

    rng = random.Random(11)
    rng.random()
    again = rng_from_json(json.loads(json.dumps(rng_state_to_json(rng))))
    assert [again.random() for _ in range(5)] == [rng.random() for _ in range(5)]
