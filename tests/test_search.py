"""`zenfx search` end to end on a tiny CIFAR seed at 32x32: improvement under budget, determinism
across worker counts, SIGKILL + resume, infeasible budgets, failing candidates, refused resumes,
plots. Small population, a few dozen candidates, batch 8."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

import pytest
from search_helpers import family, kill_search_mid_run
from typer.testing import CliRunner

from zenfx.errors import UsageError
from zenfx.genome import build
from zenfx.search import search

SEED = "zoo:cifar_resnet_basic"
BUDGET = "200k"  # the seed has 155,026 parameters: widening edits soon break it
COMMON = dict(resolution=32, batch_size=8, population=8, round_size=4, budget_params=BUDGET, seed=3,
              num_classes=10)
CLI_COMMON = [SEED, "-r", "32", "-b", "8", "-P", "8", "--round", "4", "--budget-params", BUDGET, "--seed", "3",
              "--num-classes", "10"]


def _rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines()) if "zenfx_log" not in r]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 16-candidate run in this process (workers=0)."""
    out = tmp_path_factory.mktemp("search") / "ref"
    res = search(SEED, out=out, candidates=16, workers=0, **COMMON)
    return out, res


def test_search_improves_on_the_seed_and_never_admits_a_candidate_over_budget(reference_run):
    out, res = reference_run
    assert res.best is not None and res.best_score > res.seed["score"]
    rows = _rows(out / "history.jsonl")
    assert rows[0]["verdict"] == "seed" and len(rows) == 17
    scored = [r for r in rows if r["verdict"] == "scored"]
    rejected = [r for r in rows if r["verdict"] == "rejected"]
    assert scored and all(r["params"] <= 200_000 for r in scored)
    assert rejected and all(r["rejected_by"] == "params" and r["params"] > 200_000 for r in rejected)
    assert all(r.get("score") is None for r in rejected)  # rejected candidates were never scored
    keys = [r["key"] for r in rows if r.get("key")]
    assert len(keys) == len(set(keys))  # no structure proposed (let alone scored) twice
    assert res.best["figures"]["params"] <= 200_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["score"] == res.best_score and summary["counters"]["proposed"] == 16
    best = build(out / "best.json")
    assert sum(p.numel() for p in best.parameters()) == res.best["figures"]["params"]


def test_plots_are_written_and_redrawn(reference_run):
    out, _ = reference_run
    pngs = {p.name: p.stat().st_size for p in (out / "plots").glob("*.png")}
    assert {"progress.png", "score_vs_macs.png", "score_vs_params.png", "stages.png"} <= set(pngs)
    assert all(size > 5_000 for size in pngs.values())
    (out / "plots" / "progress.png").unlink()
    from cli.app import app

    r = CliRunner().invoke(app, ["plot", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "plots" / "progress.png").stat().st_size > 5_000


def test_same_history_for_one_and_two_worker_processes(reference_run, tmp_path):
    ref, _ = reference_run
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        search(SEED, out=out, candidates=16, workers=workers, plots=False, **COMMON)
        assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes(), workers


def test_sigkill_then_resume_ends_exactly_like_the_uninterrupted_run(reference_run, tmp_path):
    ref, ref_res = reference_run
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cli", "search", *CLI_COMMON, "--out", str(out), "--candidates", "16",
           "--workers", "1", "--no-plots"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    returncode = kill_search_mid_run(cmd, out, env=env)
    assert returncode == -signal.SIGKILL, "the search ended before it could be killed"
    res = search(SEED, out=out, candidates=16, workers=1, resume=True, plots=False, **COMMON)
    a, b = json.loads((out / "checkpoint.json").read_text()), json.loads((ref / "checkpoint.json").read_text())
    assert a["population"] == b["population"] and a["rng"] == b["rng"] and a["counters"] == b["counters"]
    assert (out / "best.json").read_text() == (ref / "best.json").read_text()
    assert res.best_score == ref_res.best_score
    assert (out / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes()


def test_resume_with_other_settings_is_refused(reference_run):
    out, _ = reference_run
    with pytest.raises(UsageError, match="(?s)cannot resume .*population"):
        search(SEED, out=out, candidates=16, workers=0, resume=True, **{**COMMON, "population": 9})
    with pytest.raises(UsageError, match="already holds a search"):
        search(SEED, out=out, candidates=16, workers=0, **COMMON)


def test_resume_extends_a_finished_run(reference_run, tmp_path):
    import shutil

    ref, _ = reference_run
    out = tmp_path / "more"
    shutil.copytree(ref, out)
    res = search(SEED, out=out, candidates=20, workers=0, resume=True, plots=False, **COMMON)
    assert res.counters["proposed"] == 20 and len(_rows(out / "history.jsonl")) == 21


def test_corrupt_checkpoint_is_a_one_line_error_naming_the_file(reference_run, tmp_path):
    import shutil

    from cli.app import app

    ref, _ = reference_run
    out = tmp_path / "corrupt"
    shutil.copytree(ref, out)
    text = (out / "checkpoint.json").read_text()
    (out / "checkpoint.json").write_text(text[: len(text) // 2])
    r = CliRunner().invoke(app, ["search", *CLI_COMMON, "--out", str(out), "--candidates", "20", "--workers", "0",
                                 "--resume"])
    assert r.exit_code == 2
    assert "checkpoint.json" in r.output and "truncated" in r.output and "Traceback" not in r.output


def test_infeasible_budget_exits_2_naming_the_smallest_figure(tmp_path):
    from cli.app import app

    r = CliRunner().invoke(app, ["search", SEED, "-r", "32", "--budget-params", "1k", "--out", str(tmp_path / "x"),
                                 "--workers", "0"])
    assert r.exit_code == 2, r.output
    assert "infeasible" in r.output and "params" in r.output and "> 1k" in r.output


def test_seed_over_budget_is_shrunk_to_fit(tmp_path):
    res = search(SEED, out=tmp_path / "s", candidates=4, workers=0, plots=False,
                       **{**COMMON, "budget_params": "60k"})
    assert res.seed["figures"]["params"] <= 60_000
    assert any("shrunk" in n for n in res.notes)
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["shrink"]["broken"] == ["params"] and cfg["shrink"]["from"]["params"] == 155_026


def test_bad_unit_is_a_one_line_usage_error(tmp_path):
    from cli.app import app

    r = CliRunner().invoke(app, ["search", SEED, "--budget-latency", "0.5", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "needs a unit" in r.output and "Traceback" not in r.output


def test_a_failing_candidate_is_recorded_and_the_run_goes_on(tmp_path):
    """A proxy that gives NaN for wide networks (registered in this process; workers=0 runs here)."""
    from zenfx.proxies.base import REGISTRY, register_proxy

    if "test_nan_when_wide" not in REGISTRY:
        @register_proxy("test_nan_when_wide", graph="original", needs_data=False, reference="test",
                        summary="params, NaN above 160k", mutates=False, deterministic=True)
        def _nan_when_wide(net, ctx):
            n = sum(p.numel() for p in net.parameters())
            return math.nan if n > 160_000 else float(n)

    res = search(SEED, out=tmp_path / "f", candidates=16, workers=0, plots=False, proxy="test_nan_when_wide",
                       **{**COMMON, "budget_params": None})
    rows = _rows(tmp_path / "f" / "history.jsonl")
    failed = [r for r in rows if r["verdict"] == "failed"]
    assert failed and all(r["stage"] == "score" and "nan" in r["error"].lower() for r in failed)
    assert res.counters["failed"] == len(failed) and res.counters["proposed"] == 16
    assert res.counters["scored"] > 0


def test_cli_json_prints_the_summary(tmp_path):
    from cli.app import app

    r = CliRunner().invoke(app, ["search", *CLI_COMMON, "--out", str(tmp_path / "j"), "--candidates", "4",
                                 "--workers", "0", "--no-plots", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["format"] == "zenfx-search-summary" and doc["counters"]["proposed"] == 4


def test_reused_topology_graphs_score_exactly_like_a_fresh_trace():
    """Width/kernel candidates reuse their topology's traced + converted graphs (candidate.Template):
    same score, MACs and depth as tracing and converting each candidate afresh."""

    from zenfx.genome import Genome
    from zenfx.search.candidate import EvalSettings, evaluate, init_worker

    g0 = Genome(seed="zoo:cifar_resnet_bottleneck", kwargs={"num_classes": 10}, input_size=(3, 32, 32))
    st = EvalSettings(proxy="zen", batch_size=8, budgets={"params": 10**9, "depth": 1000}, seed_genome=g0.to_dict())
    fast, full = init_worker(st), init_worker(st)
    full.fast = False
    genomes = family(g0, seed=1, size=8)
    for g in genomes:
        a, b = evaluate(fast, g.to_dict()), evaluate(full, g.to_dict())
        assert (a["score"], a["figures"]) == (b["score"], b["figures"])
    assert fast.templates and not full.templates
    assert "reuse" in evaluate(fast, genomes[-1].to_dict())["timings"]


def test_cheap_structure_keys_agree_with_structure_key():
    """The edit-based key (no depth edits) dedups exactly where zenfx.structure_key does."""
    import random

    from zenfx.genome import Genome, mutate, structure_key
    from zenfx.search.run import Keyer

    g0 = Genome(seed=SEED, kwargs={}, input_size=(3, 32, 32))
    keyer = Keyer(g0)
    rng = random.Random(5)
    genomes = [g0]
    for _ in range(30):
        genomes.append(mutate(rng.choice(genomes), rng, rng.choice((1, 2)), kinds=("width", "kernel")))
    cheap = [keyer(g) for g in genomes]
    full = [structure_key(g) for g in genomes]
    pairs = set(zip(cheap, full, strict=True))
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)  # a bijection


def test_a_data_proxy_with_data_batches(tmp_path):
    """Any registered proxy is an objective; --data feeds the data-dependent ones (zico needs logits,
    so it runs on real weights with a head appended)."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "batch.npz", x=rng.standard_normal((16, 3, 32, 32)).astype("float32"),
             y=rng.integers(0, 10, 16))
    # a worker process: this process must not have run a backward pass before the fork (autograd's
    # threads do not survive one), so the seed is scored on a worker too
    res = search(SEED, out=tmp_path / "z", candidates=4, workers=1, plots=False, proxy="zico",
                 data=str(tmp_path / "batch.npz"), **COMMON)
    rows = _rows(tmp_path / "z" / "history.jsonl")
    assert res.proxy == "zico" and res.counters["failed"] == 0
    assert all(math.isfinite(r["score"]) for r in rows if r["verdict"] in ("seed", "scored"))


def test_latency_and_memory_budgets_are_checked_with_the_predictor(tmp_path, monkeypatch):
    """Latency comes from the per-operator predictor (a table in ZENFX_CACHE_DIR, operators timed
    once), memory from the traced graph; both land in the history and bound the candidates."""
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))
    res = search(SEED, out=tmp_path / "lat", candidates=4, workers=0, plots=False,
                 **{**COMMON, "budget_latency": "2s", "budget_memory": "1.2MB"})
    rows = _rows(tmp_path / "lat" / "history.jsonl")
    done = [r for r in rows if r["verdict"] in ("seed", "scored")]
    assert done and all(0 < r["latency"] <= 2.0 and 0 < r["memory"] <= 1_200_000 for r in done)
    assert res.budgets["latency"] == 2.0 and res.budgets["memory"] == 1_200_000
    assert list((tmp_path / "cache" / "latency").glob("*.json"))  # the table, reused by later runs


def test_device_cuda_without_a_gpu_is_a_one_line_error(tmp_path):
    """On the local backend the scoring device is checked here, before any work (this CI has no GPU)."""
    import torch

    from cli.app import app

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = CliRunner().invoke(app, ["search", *CLI_COMMON, "--out", str(tmp_path / "g"), "--candidates", "4",
                                 "--device", "cuda"])
    assert r.exit_code == 2 and "CUDA is not available" in r.output and "--device" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "g").exists()
    r = CliRunner().invoke(app, ["search", *CLI_COMMON, "--out", str(tmp_path / "g"), "--device", "tpu"])
    assert r.exit_code == 2 and "not a device" in r.output


def test_executor_options_ask_ray_for_a_gpu_per_worker_when_scoring_on_cuda():
    from zenfx.search.config import SearchConfig
    from zenfx.search.run import executor_options

    def opts(**kw):
        return executor_options(SearchConfig(seed_genome={}, **kw))

    assert opts(backend="ray", device="cuda") == {"num_gpus_per_worker": 1}
    assert opts(backend="ray", device="cuda:1") == {"num_gpus_per_worker": 1}
    assert opts(backend="ray", device="cpu") == {}
    # CUDA does not survive a fork, nor do autograd's threads: fresh workers for both
    assert opts(backend="local", device="cuda")["start_method"] == "forkserver"
    assert opts(backend="local", device="cpu", proxy="zico")["start_method"] == "forkserver"
    assert opts(backend="local", device="cpu", proxy="zen") == {}


def test_resume_on_another_device_is_refused(reference_run):
    """GPU float sums differ from the CPU's: the device is part of the run's identity."""
    out, _ = reference_run
    with pytest.raises(UsageError, match="(?s)cannot resume .*device"):
        search(SEED, out=out, candidates=16, workers=0, resume=True, backend="ray", device="cuda", **COMMON)


def test_the_worker_warm_up_leaves_every_result_unchanged():
    """init_scoring_worker evaluates the seed once before the first task; a worker without that
    warm-up gives the same figures and scores for a run of mutated candidates."""

    from zenfx.genome import Genome
    from zenfx.search.candidate import EvalSettings, evaluate, init_scoring_worker, init_worker

    g0 = Genome(seed=SEED, kwargs={"num_classes": 10}, input_size=(3, 32, 32))
    st = EvalSettings(proxy="zen", batch_size=8, budgets={"params": 10**9}, seed_genome=g0.to_dict())
    warm, cold = init_scoring_worker(st), init_worker(st)
    assert warm.templates and not cold.templates
    for g in family(g0, seed=4, size=6):
        a, b = evaluate(warm, g.to_dict()), evaluate(cold, g.to_dict())
        assert (a["status"], a["score"], a["figures"]) == (b["status"], b["score"], b["figures"])


def test_a_worker_adopts_the_shipped_seed_space_instead_of_probing(tmp_path, monkeypatch):
    """What a search ships to Ray actors: the driver's probed topology, keyed like the disk cache. A
    worker with an empty cache adopts it (no probe), and refuses one made for another seed."""
    import zenfx.genome.seeds as seeds
    from zenfx.genome import Genome, adopt_seed_space, current_state, seed_space_document

    g = Genome(seed=SEED, kwargs={"num_classes": 10}, input_size=(3, 32, 32))
    doc = seed_space_document(g)
    assert doc["topology"] and len(json.dumps(doc)) < 100_000
    probed = current_state(g)

    def no_probe(*a, **k):
        raise AssertionError("probed although the space was shipped")

    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(seeds, "_SEED_TOPOS", {})
    monkeypatch.setattr(seeds, "probe_topology", no_probe)
    other = Genome(seed=SEED, kwargs={"num_classes": 100}, input_size=(3, 32, 32))
    assert not adopt_seed_space(other, doc)  # another seed's key
    assert adopt_seed_space(g, doc)
    adopted = current_state(g)
    assert adopted.counts() == probed.counts() and adopted.size_log10() == probed.size_log10()
    assert [(x.id, x.channels, x.min, x.max, x.step) for x in adopted.groups] == \
        [(x.id, x.channels, x.min, x.max, x.step) for x in probed.groups]
    assert (tmp_path / "empty-cache" / "space").is_dir()  # and this machine's cache now holds it
