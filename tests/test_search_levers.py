"""The search's levers (tournament parent choice, edit-kind weights, the CPU limit): deterministic
for any number of workers, exact on resume, and a run written before a lever existed resumes as it ran."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from zenfx.errors import UsageError
from zenfx.search import search
from zenfx.search.config import LEGACY, SearchConfig
from zenfx.search.evolution import Member, pick_parent

SEED = "zoo:cifar_resnet_basic"
COMMON = dict(resolution=32, batch_size=8, population=8, round_size=4, budget_params="400k", seed=5,
              num_classes=10)
LEVERS = dict(tournament=3, kind_weights="depth=3,kernel=0.5")


def _rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines()) if "zenfx_log" not in r]


def test_a_tournament_of_one_is_the_reference_draw_and_larger_ones_pick_the_best_drawn():
    members = [Member(i, float(s), {}) for i, s in enumerate([3.0, 9.0, 1.0, 9.0, 5.0])]
    a, b = random.Random(7), random.Random(7)
    assert [pick_parent(members, a, 1).id for _ in range(20)] == [members[b.randrange(5)].id for _ in range(20)]
    rng, check = random.Random(3), random.Random(3)
    for _ in range(50):
        drawn = [members[check.randrange(5)] for _ in range(4)]
        want = max(drawn, key=lambda m: m.score)  # the first drawn of the best on ties
        assert pick_parent(members, rng, 4) is want


@pytest.fixture(scope="module")
def lever_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("levers") / "ref"
    res = search(SEED, out=out, candidates=24, workers=0, plots=False, export=False, **COMMON, **LEVERS)
    return out, res


def test_levers_give_the_same_history_for_any_number_of_workers(lever_run, tmp_path):
    ref, _ = lever_run
    cfg = json.loads((ref / "config.json").read_text())
    assert cfg["tournament"] == 3 and cfg["kind_weights"] == {"depth": 3.0, "kernel": 0.5}
    rows = _rows(ref / "history.jsonl")
    kinds = [e["kind"] for r in rows for e in r["edits"]]
    assert kinds.count("depth") > kinds.count("kernel")
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        search(SEED, out=out, candidates=24, workers=workers, plots=False, export=False, **COMMON, **LEVERS)
        assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes(), workers


def test_levers_resume_exactly_and_are_the_runs_own_on_resume(lever_run, tmp_path):
    ref, ref_res = lever_run
    out = tmp_path / "cut"
    search(SEED, out=out, candidates=12, workers=0, plots=False, export=False, **COMMON, **LEVERS)
    # resumed without naming the levers: the run's own, not today's defaults
    res = search(SEED, out=out, candidates=24, workers=1, resume=True, plots=False, export=False, **COMMON)
    assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes()
    assert res.best_score == ref_res.best_score
    with pytest.raises(UsageError, match="(?s)cannot resume .*tournament"):
        search(SEED, out=out, candidates=30, workers=0, resume=True, **COMMON, tournament=2)
    # a run written before the levers existed (no lever in its config or history header) resumes,
    # with the reference's rules, exactly like an uninterrupted run of those rules
    legacy = dict(COMMON, tournament=1, kind_weights="uniform", crown_repeats=0)
    whole = tmp_path / "whole"
    search(SEED, out=whole, candidates=12, workers=0, plots=False, export=False, **legacy)
    old = tmp_path / "old"
    search(SEED, out=old, candidates=8, workers=0, plots=False, export=False, **legacy)
    doc = json.loads((old / "config.json").read_text())
    for k in LEGACY:
        doc.pop(k)
    (old / "config.json").write_text(json.dumps(doc))
    assert not any(k in (old / "history.jsonl").read_text().splitlines()[0] for k in LEGACY)
    assert SearchConfig.from_dict(doc).tournament == 1 and SearchConfig.from_dict(doc).kind_weights is None
    search(SEED, out=old, candidates=12, workers=0, resume=True, plots=False, export=False, **COMMON)
    assert (old / "history.jsonl").read_bytes() == (whole / "history.jsonl").read_bytes()
    # and one whose header names a lever at its pre-lever value (written while the lever was new)
    named = tmp_path / "named"
    search(SEED, out=named, candidates=8, workers=0, plots=False, export=False, **legacy)
    lines = (named / "history.jsonl").read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    head["header"]["identity"]["crown_repeats"] = 0
    (named / "history.jsonl").write_text(json.dumps(head) + "\n" + "".join(lines[1:]))
    search(SEED, out=named, candidates=12, workers=0, resume=True, plots=False, export=False, **COMMON)
    rows_named = (named / "history.jsonl").read_text().splitlines()[1:]
    assert rows_named == (whole / "history.jsonl").read_text().splitlines()[1:]


def test_cpu_limit_ends_a_run_and_may_change_on_resume(tmp_path):
    out = tmp_path / "cpu"
    res = search(SEED, out=out, candidates=None, cpu_limit=0.01, workers=0, plots=False, export=False, **COMMON)
    assert res.stopped == "cpu-limit" and res.counters["rounds"] == 1
    res = search(SEED, out=out, candidates=8, workers=0, resume=True, plots=False, export=False, **COMMON)
    assert res.stopped == "candidates"
    with pytest.raises(UsageError, match="--cpu-limit"):
        search(SEED, out=tmp_path / "bad", cpu_limit="soon", workers=0, **COMMON)
    with pytest.raises(UsageError, match="--kind-weights"):
        search(SEED, out=tmp_path / "bad2", candidates=4, kind_weights="depth", workers=0, **COMMON)


def test_crowning_rescores_would_be_bests_deterministically_and_as_zenfx_score_does(tmp_path):
    import zenfx

    kw = dict(candidates=16, plots=False, export=False, crown_repeats=3, **COMMON)
    a = search(SEED, out=tmp_path / "a", workers=0, **kw)
    search(SEED, out=tmp_path / "b", workers=2, **kw)
    assert (tmp_path / "a" / "history.jsonl").read_bytes() == (tmp_path / "b" / "history.jsonl").read_bytes()
    rows = _rows(tmp_path / "a" / "history.jsonl")
    assert rows[0]["crown_repeats"] == 3
    crowned = [r for r in rows if "crown" in r]
    assert len(crowned) >= 2 and all(r["verdict"] in ("seed", "scored") for r in crowned)
    best = a.best
    assert best is not None and best["crown"] == max(r["crown"] for r in crowned[1:])
    again = zenfx.score(str(tmp_path / "a" / "best.json"), "zen", batch_size=8, repeat=3, seed=5)
    assert again.value == pytest.approx(best["crown"], rel=1e-6)


def test_per_candidate_draws_are_each_structures_own_and_deterministic(tmp_path):
    import zenfx
    from zenfx.search.run import draw_seed

    kw = dict(plots=False, export=False, score_draws="per-candidate", **COMMON)
    a = search(SEED, out=tmp_path / "a", candidates=16, workers=0, **kw)
    search(SEED, out=tmp_path / "b", candidates=16, workers=2, **kw)
    assert (tmp_path / "a" / "history.jsonl").read_bytes() == (tmp_path / "b" / "history.jsonl").read_bytes()
    # cut at 8, resumed without naming the lever: the run's own draws, the same history
    search(SEED, out=tmp_path / "c", candidates=8, workers=0, **kw)
    search(SEED, out=tmp_path / "c", candidates=16, workers=1, resume=True, plots=False, export=False,
           **{k: v for k, v in COMMON.items()})
    assert (tmp_path / "c" / "history.jsonl").read_bytes() == (tmp_path / "a" / "history.jsonl").read_bytes()
    assert json.loads((tmp_path / "a" / "config.json").read_text())["score_draws"] == "per-candidate"
    # a row's score is `zenfx score` of its genome with the seed of its own draw, not the run's seed
    search(SEED, out=tmp_path / "f", candidates=16, workers=0, plots=False, export=False, **COMMON)
    fixed = _rows(tmp_path / "f" / "history.jsonl")
    rows = _rows(tmp_path / "a" / "history.jsonl")
    mine = next(r for r in rows if r["id"] == a.best["id"])
    again = zenfx.score(str(tmp_path / "a" / "best.json"), "zen", batch_size=8, repeat=1,
                        seed=draw_seed(5, mine["key"]))
    assert again.value == pytest.approx(mine["score"], rel=1e-6)
    assert rows[0]["key"] == fixed[0]["key"] and rows[0]["score"] != fixed[0]["score"]
    with pytest.raises(UsageError, match="--score-draws"):
        search(SEED, out=tmp_path / "bad", candidates=4, score_draws="each", workers=0, **COMMON)
