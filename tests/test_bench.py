"""``zenfx bench proxies`` end to end on a CI-sized sample, plus the engine's pieces.

Tests that read the ground truth use ../shared/data relative to the repository (the user's copy
in a real run: --truth) and skip cleanly when it is absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from zenfx.bench import Arch, BenchConfig, correlate, published_figures, read_rows, run_bench, sample_archs

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO.parent / "shared" / "data"
needs_truth = pytest.mark.skipif(not (TRUTH / "nasbench201.csv").is_file(), reason="ground truth not in ../shared/data")


def test_sample_is_seeded_prefix():
    archs = [Arch(i, f"a{i}", float(i)) for i in range(200)]
    a = sample_archs(archs, 50, 3)
    b = sample_archs(archs, 120, 3)
    assert [x.index for x in a] == [x.index for x in b[:50]]
    assert [x.index for x in sample_archs(archs, 50, 4)] != [x.index for x in a]
    assert len({x.index for x in b}) == 120


def test_correlate_signs_inf_and_failures():
    rows = [{"index": i, "accuracy": float(i), "scores": {"params": float(i), "synflow": -float(i)},
             "seconds": {"params": 0.1, "synflow": 0.2}} for i in range(10)]
    rows[0]["scores"]["params"] = -math.inf  # a dead network ranks lowest, not dropped
    rows[5]["scores"]["synflow"] = None  # a failure
    c = {x.proxy: x for x in correlate(rows, ["params", "synflow"], {"params": (0.5, 0.7)}, gaussian=True)}
    assert c["params"].kendall_tau == pytest.approx(1.0) and c["params"].n == 10
    assert c["params"].published_tau == 0.5 and c["params"].published_rho == 0.7
    assert c["synflow"].kendall_tau == pytest.approx(-1.0) and c["synflow"].failures == 1
    assert not c["params"].gaussian_data  # data-free proxies are never marked
    assert c["params"].mean_seconds == pytest.approx(0.1)


@needs_truth
def test_published_figures_from_readme():
    p = published_figures("nb201", "cifar10", TRUTH)
    assert p["zico"] == (0.61, 0.80) and p["params"] == (0.57, 0.75) and p["zen"] == (0.29, 0.38)
    s = published_figures("nats-sss", "cifar100", TRUTH / "natsbench_sss.csv")
    assert s["flops"] == (0.21, 0.30) and s["grasp"] == (0.01, 0.01)


@needs_truth
def test_ci_run_end_to_end_resume_and_json(cli, tmp_path):
    out = tmp_path / "nb"
    args = ["bench", "proxies", "--space", "nb201", "--truth", str(TRUTH), "--dataset", "cifar10", "--sample", "12",
            "--seed", "1", "--proxies", "params,flops,synflow,naswot", "--batch-size", "8", "--out", str(out)]
    code, stdout, _ = cli(*args, "--json")
    assert code == 0, stdout
    res = json.loads(stdout)
    assert res["archs_scored"] == 12 and res["archs_total"] == 12
    corr = {c["proxy"]: c for c in res["correlations"]}
    assert set(corr) == {"params", "flops", "synflow", "naswot"}
    assert corr["naswot"]["gaussian_data"] and not corr["synflow"]["gaussian_data"]
    assert corr["params"]["published_tau"] == 0.57
    for c in corr.values():
        assert c["n"] == 12 and -1 <= c["kendall_tau"] <= 1 and c["mean_seconds"] > 0
    # params and flops are monotone in each other on NB201 only up to ties: both must rank-correlate
    assert corr["params"]["kendall_tau"] > 0 and corr["flops"]["kendall_tau"] > 0
    rows = read_rows(out / "scores.jsonl")
    assert len(rows) == 12 and all(set(r["scores"]) == set(corr) for r in rows)
    assert (out / "scores.csv").read_text().count("\n") == 13
    # resume: nothing left to score, same table
    code, stdout2, _ = cli(*args, "--json", "--resume")
    assert code == 0
    res2 = json.loads(stdout2)
    assert res2["correlations"] == res["correlations"]
    assert len((out / "scores.jsonl").read_text().splitlines()) == 13  # the run header + 12 rows
    # a different run in the same folder is refused
    code, _, stderr = cli(*[a if a != "8" else "16" for a in args], "--resume")
    assert code == 2
    # the table for people marks Gaussian data
    code, table, _ = cli(*args, "--report-only")
    assert code == 0 and "Kendall" in table and "gaussian*" in table and "0.57 / 0.75" in table


@needs_truth
def test_nats_sss_small_run_api(tmp_path):
    cfg = BenchConfig("nats-sss", "cifar100", sample=4, seed=0, proxies=("params", "synflow", "zen"), batch_size=4)
    res = run_bench(cfg, TRUTH, out=tmp_path)
    assert res.archs_scored == 4
    assert {c.proxy for c in res.correlations} == {"params", "synflow", "zen"}
    assert all(c.n == 4 for c in res.correlations)
    assert res.mean_seconds_per_arch and res.mean_seconds_per_arch > 0


@needs_truth
@pytest.mark.parametrize("bad", [["--space", "nb101"], ["--space", "nats-sss", "--dataset", "cifar10"],
                                 ["--truth", "/nonexistent/folder"], ["--proxies", "nosuchproxy"],
                                 ["--sample", "0"], ["--device", "tpu"]])
def test_bad_options_exit_2(cli, bad):
    args = {"--space": "nb201", "--truth": str(TRUTH), "--dataset": "cifar10", "--sample": "2", "--proxies": "params"}
    for k, v in zip(bad[::2], bad[1::2], strict=True):
        args[k] = v
    flat = [x for kv in args.items() for x in kv]
    code, _, _ = cli("bench", "proxies", *flat)
    assert code == 2


@pytest.mark.slow
@needs_truth
def test_jobs_pool_gives_the_same_scores(tmp_path):
    base = dict(space="nb201", dataset="cifar10", sample=4, seed=2, proxies=("params", "synflow", "snip"), batch_size=4)
    a = run_bench(BenchConfig(**base), TRUTH, out=tmp_path / "a", jobs=1)
    b = run_bench(BenchConfig(**base), TRUTH, out=tmp_path / "b", jobs=2)
    sa = {r["index"]: r["scores"] for r in read_rows(tmp_path / "a" / "scores.jsonl")}
    sb = {r["index"]: r["scores"] for r in read_rows(tmp_path / "b" / "scores.jsonl")}
    assert sa.keys() == sb.keys()
    for k in sa:  # same weights and batches; only the thread count (reduction order) differs
        for p in sa[k]:
            assert sa[k][p] == pytest.approx(sb[k][p], rel=1e-6)
    assert len(a.correlations) == len(b.correlations) == 3


@needs_truth
def test_device_cuda_without_a_gpu_exits_2_before_scoring(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = cli("bench", "proxies", "--space", "nb201", "--truth", str(TRUTH), "--sample", "2", "--proxies",
                       "params", "--device", "cuda", "--out", str(tmp_path / "g"))
    assert code == 2 and "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "g" / "scores.jsonl").exists()


def test_the_device_is_part_of_a_gpu_runs_key_only():
    """Old CPU output folders keep their key (and stay resumable); a GPU run's scores differ in the
    last bits from a CPU run's, so it keeps its own."""
    base = dict(space="nb201", dataset="cifar10", sample=4)
    assert "device" not in BenchConfig(**base).key()
    assert BenchConfig(**base, device="cuda:0").key()["device"] == "cuda:0"
