"""Budget units, cheap-first checks and the population bookkeeping of the search (no model needed)."""

from __future__ import annotations

import random

import pytest

from zenfx.errors import UsageError
from zenfx.search.budget import BudgetError, Budgets, check, parse_count, parse_latency, parse_memory
from zenfx.search.evolution import Member, Population, rng_from_json, rng_state_to_json
from zenfx.search.plots import pareto, progress_curves
from zenfx.search.run import parse_duration


@pytest.mark.parametrize("text,value", [("1M", 1_000_000), ("1.5m", 1_500_000), ("500k", 500_000),
                                        ("2G", 2_000_000_000), ("1e6", 1_000_000), ("1000000", 1_000_000),
                                        ("400MMACs", 400_000_000), ("400M MAC", 400_000_000)])
def test_count_units(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text,seconds", [("0.5ms", 5e-4), ("500us", 5e-4), ("500µs", 5e-4), ("2s", 2.0),
                                          ("100ns", 1e-7)])
def test_latency_units(text, seconds):
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,nbytes", [("64MB", 64_000_000), ("64MiB", 64 * 2**20), ("1.5GB", 1_500_000_000),
                                         ("512kB", 512_000), ("100B", 100)])
def test_memory_units(text, nbytes):
    assert parse_memory(text) == nbytes


@pytest.mark.parametrize("fn,text,needle", [
    (parse_count, "1X", "not understood"), (parse_count, "-1M", "not understood"), (parse_count, "0", "positive"),
    (parse_latency, "0.5", "needs a unit"), (parse_latency, "3 hours", "not understood"),
    (parse_memory, "64", "needs a unit"), (parse_memory, "64 parsecs", "not understood"),
    (lambda t: parse_count(t, "macs"), "400MFLOPs", "MACs, not FLOPs")])
def test_bad_units_are_one_line_usage_errors(fn, text, needle):
    with pytest.raises(BudgetError) as info:
        fn(text)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_durations():
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    assert parse_duration("45") == 45 and parse_duration(None) is None
    with pytest.raises(UsageError):
        parse_duration("soon")


def test_check_is_cheap_first_and_stops_at_the_first_broken_budget():
    b = Budgets.parse(params="1M", macs="10M", latency="1ms")
    asked: list[str] = []

    def figure(name):
        asked.append(name)
        return {"params": 5e5, "macs": 2e7, "latency": 1.0}[name]

    v = check(b, figure)
    assert v.rejected_by == "macs" and asked == ["params", "macs"]  # latency (the dear one) never computed
    assert "macs 20M > budget 10M" == v.message(b)
    asked.clear()
    v = check(b, figure, stop_early=False)
    assert asked == ["params", "macs", "latency"] and v.rejected_by == "macs"


def test_budgets_round_trip():
    b = Budgets.parse(params="1M", memory="64MB", max_depth=18, latency="0.5ms", latency_batch=8)
    assert Budgets.from_dict(b.to_dict()) == b
    assert b.active() == ["params", "depth", "memory", "latency"]


def test_population_drops_the_lowest_earliest_first():
    pop = Population(3)
    for i, s in enumerate([5.0, 1.0, 7.0, 1.0, 9.0]):
        pop.insert(Member(i + 1, s, {}))
    assert [m.id for m in pop.members] == [1, 3, 5]
    assert pop.best().id == 5 and pop.median_score() == 7.0


def test_rng_state_round_trips_through_json():
    import json

    rng = random.Random(7)
    rng.random()
    clone = rng_from_json(json.loads(json.dumps(rng_state_to_json(rng))))
    assert [rng.random() for _ in range(5)] == [clone.random() for _ in range(5)]


def test_pareto_front_and_progress_replay():
    assert pareto([(1, 1), (2, 3), (3, 2), (4, 5), (4, 4)]) == [(1, 1), (2, 3), (4, 5)]
    rows = [{"id": 0, "verdict": "seed", "score": 0.0}] + [
        {"id": i, "verdict": "scored", "score": float(s)} for i, s in enumerate([3, 1, 4, 1, 5], start=1)]
    c = progress_curves(rows, population=2)
    assert c["best"] == [3, 3, 4, 4, 5]
    assert c["median"] == [3, 2, 3.5, 3.5, 4.5]


def test_cli_defaults_agree_with_the_library():
    from cli import cmd_search
    from zenfx.search import config

    assert (cmd_search.DEFAULT_POPULATION, cmd_search.DEFAULT_CANDIDATES, cmd_search.DEFAULT_ROUND,
            cmd_search.DEFAULT_BATCH) == (config.DEFAULT_POPULATION, config.DEFAULT_CANDIDATES, config.DEFAULT_ROUND,
                                          config.DEFAULT_BATCH)
