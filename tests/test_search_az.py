"""A search whose objective is rank-aggregated (AZ-NAS's ``az``): scores are ranks within the pool
(population + the round's candidates), re-ranked every round; the same history for any number of
workers, and a resumed run ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from zenfx.proxies.aggregate import aggregate_scores
from zenfx.search import search
from zenfx.search.nats import NatsWidths, _nats_genome

START = "16:16:16:16:16"
COMMON = dict(proxy="az", budget_params="200k", population=3, round_size=3, batch_size=4, seed=5,
              kinds=("width",), plots=False, export=False, num_classes=100)


def _run(out: Path, candidates: int, workers: int, resume: bool = False):
    return search(_nats_genome(START), out=out, candidates=candidates, workers=workers, mutator=NatsWidths(),
                  resume=resume, **COMMON)


def _rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines()) if "zenfx_log" not in r]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("azsearch") / "ref"
    return out, _run(out, 6, 0)


def test_scores_are_ranks_within_the_pool(reference):
    out, res = reference
    rows = _rows(out / "history.jsonl")
    assert rows[0]["verdict"] == "seed" and rows[0]["score"] == 0.0 and set(rows[0]["values"]) == {
        "az_expressivity", "az_progressivity", "az_trainability", "az_complexity"}
    scored = [r for r in rows[1:] if r["verdict"] == "scored"]
    assert scored and all(r["score"] <= 0.0 for r in scored)
    ck = json.loads((out / "checkpoint.json").read_text())
    pop = ck["population"]
    assert len(pop) <= 3 and all("values" in m for m in pop) and all(m["score"] <= 0.0 for m in pop)
    assert res.best["score"] == max(m["score"] for m in pop) and math.isfinite(res.best_score)
    # round 1 starts from an empty population: its pool is its own scored candidates
    first = [r for r in rows[1:] if r["round"] == 1 and r["verdict"] == "scored"]
    assert first
    assert [r["score"] for r in first] == pytest.approx(list(aggregate_scores("az", [r["values"] for r in first])))
    # the last round's pool: the population it started from plus its scored candidates; the members kept
    # are the top of that pool, with the scores they had in it
    last = max(r["round"] for r in rows)
    new = {r["id"]: r for r in rows if r["round"] == last and r["verdict"] == "scored"}
    kept_new = [m for m in pop if m["id"] in new]
    assert all(m["score"] == pytest.approx(new[m["id"]]["score"]) for m in kept_new)
    dropped = [r for i, r in new.items() if i not in {m["id"] for m in pop}]
    assert all(d["score"] <= min(m["score"] for m in pop) + 1e-12 for d in dropped)


def test_same_history_for_two_workers(reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "w2"
    _run(out, 6, 2)
    assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes()


def test_resume_ends_exactly_like_the_uninterrupted_run(reference, tmp_path):
    ref, ref_res = reference
    out = tmp_path / "resumed"
    _run(out, 3, 0)  # one round, stopped
    res = _run(out, 6, 0, resume=True)
    a, b = json.loads((out / "checkpoint.json").read_text()), json.loads((ref / "checkpoint.json").read_text())
    assert a["population"] == b["population"] and a["rng"] == b["rng"] and a["counters"] == b["counters"]
    assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes()
    assert res.best_score == ref_res.best_score
