"""Issue 22 (the new-user sweep of the search half): exit codes and runs that cannot work, checked
through the CLI on the hand-written nets in tests/sweep_nets.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NETS = Path(__file__).resolve().parent / "sweep_nets.py"
FAST = ["-r", "32", "-b", "4", "--workers", "0", "--candidates", "2", "-P", "2", "--round", "2", "--no-plots"]


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_search_out_that_cannot_be_a_run_folder_is_exit_2(cli, tmp_path, where):
    f = tmp_path / "afile.txt"
    f.write_text("x")
    out = {"file": f, "under_file": f / "sub", "proc": Path("/proc/zz")}[where]
    code, stdout, stderr = cli("search", f"{NETS}:plain", *FAST, "--out", str(out), "--json")
    assert code == 2, stderr
    doc = json.loads(stdout)
    assert doc["exit_code"] == 2 and "--out" in doc["error"] and "zenfx bug" not in doc["error"]
    assert len(stderr.strip().splitlines()) == 1


def test_search_whose_space_offers_no_edit_of_the_kinds_refuses_up_front(cli, tmp_path):
    """A plain Sequential of conv/BN/ReLU has no block at all: no free block run, so --kinds depth
    cannot work (a one-block stage such as cifar_resnet_basic's can grow since issue 21)."""
    out = tmp_path / "run"
    code, stdout, stderr = cli("search", f"{NETS}:plain", *FAST, "--kinds", "depth", "--out", str(out), "--json")
    assert code == 2, stderr
    doc = json.loads(stdout)
    assert "no free block run" in doc["error"] and "--kinds" in doc["error"]
    assert not out.exists()  # nothing was started


def test_search_on_a_seed_that_is_not_convertible_is_exit_4_at_the_convert_stage(cli, tmp_path):
    code, stdout, stderr = cli("search", f"{NETS}:twobranch", *FAST, "--out", str(tmp_path / "run"), "--json")
    assert code == 4, stderr
    assert not (tmp_path / "run").exists()  # no empty run folder left behind
    doc = json.loads(stdout)
    assert doc["exit_code"] == 4 and "(convert)" in doc["error"] and "concat" in doc["error"]


def test_a_failing_candidate_names_the_convert_stage():
    from zenfx.genome import Genome
    from zenfx.search.candidate import EvalSettings, evaluate, init_worker

    state = init_worker(EvalSettings(batch_size=2))
    out = evaluate(state, Genome(f"{NETS}:twobranch", {}, (3, 32, 32)).to_dict())
    assert out["status"] == "failed" and out["stage"] == "convert" and out["exit_code"] == 4


def test_mutate_says_why_vcnn_depth_and_zen_are_missing(cli):
    code, stdout, stderr = cli("mutate", f"{NETS}:twobranch", "-r", "32", "-b", "2")
    assert code == 0, stderr
    note = [ln for ln in stdout.splitlines() if ln.startswith("note:")]
    assert len(note) == 1 and "VCNN depth and Zen-Score" in note[0] and "concat" in note[0]
    code, stdout, _ = cli("mutate", f"{NETS}:twobranch", "-r", "32", "-b", "2", "--json")
    doc = json.loads(stdout)
    assert "concat" in doc["seed"]["vcnn_error"] and "concat" in doc["mutant"]["zen_error"]


@pytest.mark.timeout(600)  # a hang is caught here; its speed belongs to benchmarks, not an assertion
def test_mutate_with_thousands_of_edits_is_a_clear_error_not_a_hang(cli):
    code, stdout, stderr = cli("mutate", "zoo:cifar_resnet_basic", "-r", "32", "--edits", "10000", "--no-score",
                               "--json")
    assert code == 2, stderr
    assert "too large to build" in json.loads(stdout)["error"] and "fewer edits" in json.loads(stdout)["error"]


@pytest.mark.parametrize("seed", ["zoo:cifar_resnet20", "zoo:cifar_resnet_basic"])
def test_a_long_draw_is_the_same_as_drawing_one_edit_at_a_time(seed):
    """``mutate(g, rng, n)`` carries the state forward (flat cost per edit); it must draw exactly
    what n single-edit draws give, depth edits included, and remember the right final space."""
    import random

    from zenfx.genome import Genome, current_state, mutate

    g0 = Genome(seed, {}, (3, 32, 32))
    many = mutate(g0, random.Random(5), 40)
    rng, one = random.Random(5), g0
    for _ in range(40):
        one = mutate(one, rng, 1)
    assert many.to_dict() == one.to_dict()
    assert seed != "zoo:cifar_resnet20" or any(e.kind == "depth" for e in many.edits)
    from zenfx.genome.mutation import _state, forget_genomes

    remembered = _state(many, True, True)  # stored by the long draw
    fresh = current_state(many)  # replayed
    assert [(x.id, x.channels, x.min, x.max, x.free) for x in fresh.groups] == \
        [(x.id, x.channels, x.min, x.max, x.free) for x in remembered.groups]
    assert [(b.path, b.count, b.free) for b in fresh.blocks] == [(b.path, b.count, b.free) for b in remembered.blocks]
    nxt = mutate(many, random.Random(9), 2)
    forget_genomes()
    assert mutate(many, random.Random(9), 2).to_dict() == nxt.to_dict()


def test_mutate_edits_0_is_a_one_line_error(cli):
    code, stdout, stderr = cli("mutate", "zoo:cifar_resnet20", "-r", "32", "--edits", "0")
    assert code == 2 and stderr.strip() == "error: --edits must be at least 1, got 0"


def test_mutate_width_choices_with_an_unknown_role_is_refused(cli):
    code, _, stderr = cli("mutate", "zoo:cifar_resnet20", "-r", "32", "--no-score", "--width-choices",
                          "nosuchrole=16,32")
    assert code == 2 and "nosuchrole" in stderr and "neither a role" in stderr
    code, stdout, stderr = cli("mutate", "zoo:cifar_resnet20", "-r", "32", "--no-score", "--width-choices",
                               "stage=16,32", "--width-choices", "conv1=16,24")
    assert code == 0, stderr


def test_mutate_prints_params_and_macs_in_the_units_search_prints(cli):
    code, stdout, stderr = cli("mutate", "zoo:cifar_resnet20", "-r", "32", "--no-score")
    assert code == 0, stderr
    seed_row = next(ln for ln in stdout.splitlines() if "seed" in ln and "│" in ln)
    assert "272.5k" in seed_row and " M " not in seed_row


def test_a_lone_repeatable_block_is_a_run_wherever_it_stands():
    """docs/mutate.md: a run is a block followed by repeatable blocks, or a lone repeatable block --
    a one-block nn.Sequential stage and a 16->16 residual block in a flat features list alike."""
    import torch

    import zenfx
    from zenfx.genome import Edit, Genome

    spec = f"{NETS}:flat_features"
    sp = zenfx.space(spec, input_size=(3, 32, 32))
    runs = {b.path: (b.count, b.min, b.max, b.free) for b in sp.blocks}
    assert runs == {"features.3": (1, 1, 3, True), "stage": (1, 1, 3, True)}
    g = Genome(spec, {}, (3, 32, 32), edits=[Edit("depth", "features.3", 3), Edit("width", "features.0", 24)])
    m = zenfx.build(g)
    assert len(m.features) == 7 and m.features[5].conv.out_channels == 24 and m.features[6].conv.in_channels == 24
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 32, 16, 16)


def test_resume_needs_only_the_run_folder_and_names_each_differing_setting(cli, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = cli("search", "zoo:cifar_resnet_basic", *FAST, "--budget-params", "200k", "--out", str(out))
    assert code == 0, stderr
    code, stdout, stderr = cli("search", "--out", str(out), "--resume", "--candidates", "4", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["counters"]["proposed"] == 4
    code, _, stderr = cli("search", "zoo:cifar_resnet_basic", "--out", str(out), "--resume", "--proxy", "params",
                          "--budget-params", "300k", "-b", "4")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert "2 setting(s) differ" in lines[0]
    assert any(ln.strip() == "budgets.params: 200000 in the run, 300000 now" for ln in lines)
    assert any(ln.strip() == "proxy: 'zen' in the run, 'params' now" for ln in lines)
    assert all(len(ln) < 120 for ln in lines[1:])
    code, _, stderr = cli("search", "--out", str(tmp_path / "nothing"))
    assert code == 2 and "SEED" in stderr


def test_extending_a_finished_run_is_exactly_the_longer_run(tmp_path):
    """item 9: 6 candidates in rounds of 4 cut the second round short; --resume --candidates 10
    runs that round again whole, so the history is byte for byte the 10-candidate run's."""
    from zenfx.search import search

    common = dict(resolution=32, batch_size=2, population=4, round_size=4, budget_params="200k", seed=1,
                  num_classes=10, workers=0, plots=False, export=False)
    search("zoo:cifar_resnet_basic", out=tmp_path / "long", candidates=10, **common)
    search("zoo:cifar_resnet_basic", out=tmp_path / "ext", candidates=6, **common)
    assert (tmp_path / "ext" / "checkpoint.before-short-round.json").exists()
    search("zoo:cifar_resnet_basic", out=tmp_path / "ext", candidates=10, resume=True, **common)
    assert (tmp_path / "ext" / "history.jsonl").read_bytes() == (tmp_path / "long" / "history.jsonl").read_bytes()
    for name in ("checkpoint.json", "checkpoint.before-short-round.json"):  # 10 = 4 + 4 + 2: short again
        a, b = (json.loads((tmp_path / d / name).read_text()) for d in ("ext", "long"))
        assert (a["rows"], a["rng"], a["population"]) == (b["rows"], b["rng"], b["population"])


def test_a_best_below_the_seed_is_said(tmp_path):
    """item 10: when no candidate beats the seed, the result says so and which one the files hold."""
    from zenfx.search import search

    # width edits under a budget of the seed's own 155,026 parameters: only narrower candidates fit
    res = search("zoo:cifar_resnet_basic", out=tmp_path / "run", resolution=32, batch_size=2, population=4,
                 round_size=4, candidates=4, seed=0, num_classes=10, workers=0, plots=False, export=False,
                 kinds=("width",), budget_params=155026)
    assert res.best is not None and res.best_score < res.seed["score"]
    said = [n for n in res.notes if n.startswith("no candidate beat the seed")]
    assert said and f"#{res.best['id']}" in said[0] and "best.json" in said[0]


def test_an_extreme_shrink_of_the_seed_is_a_warning(tmp_path):
    """item 11: a seed shrunk to a sliver of itself gets a warning with what to do, not only a note."""
    from zenfx.search import search
    from zenfx.search.run import shrink_warning

    said: list[str] = []
    res = search("zoo:cifar_resnet_basic", out=tmp_path / "run", resolution=32, batch_size=2, population=4,
                 round_size=4, candidates=2, seed=0, num_classes=10, workers=0, plots=False, export=False,
                 budget_params="8k", notify=said.append)
    shrink = json.loads((tmp_path / "run" / "config.json").read_text())["shrink"]
    assert shrink["widths"] <= 0.25
    assert any(m.startswith("warning: the seed was shrunk") and "smaller seed or a larger budget" in m for m in said)
    assert any("degenerate" in n for n in res.notes)
    assert shrink_warning({"widths": 0.7, "depths": "seed"}) is None


def test_a_latency_budget_says_its_setting_and_error_and_can_verify_the_best(tmp_path):
    """item 7b: the budget's thread count and the predictor's expected error are stated, and
    --verify-latency times the best for real at that setting."""
    from zenfx.search import search

    res = search("zoo:cifar_resnet_basic", out=tmp_path / "run", resolution=32, batch_size=2, population=4,
                 round_size=4, candidates=2, seed=0, num_classes=10, workers=0, plots=False, export=False,
                 budget_latency="1s", verify_latency=True)
    note = next(n for n in res.notes if n.startswith("latency is predicted"))
    assert "1 thread" in note and "expected error" in note and "--threads 1" in note
    verified = next(n for n in res.notes if n.startswith("--verify-latency"))
    assert "measures" in verified and "within the budget" in verified


def test_report_says_when_its_thread_count_differs_from_a_search_budgets(cli, monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))  # the operator table of this fake setting stays here
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    code, stdout, stderr = cli("report", "zoo:cifar_resnet20", "-r", "32", "--predict")
    assert code == 0, stderr
    assert "assumes 1 thread" in stdout and "--threads 1" in stdout
    code, stdout, _ = cli("report", "zoo:cifar_resnet20", "-r", "32", "--predict", "--threads", "1")
    assert code == 0 and "assumes 1 thread" not in stdout
