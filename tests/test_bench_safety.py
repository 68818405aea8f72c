"""``zenfx bench proxies``: an earlier run is never overwritten, bad --out / --report-only are clean
errors, a scores line cut mid-write is re-scored, and ImageNet16-120 ground truth from the user's
own CSV (issue 14 items 2, 5, 16). Every test writes its own small truth CSV."""

from __future__ import annotations

import csv
import itertools
import json

import pytest

from zenfx.bench import DEFAULT_PROXIES, BenchConfig, read_rows, run_bench

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _arch(ops):
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


@pytest.fixture
def truth(tmp_path):
    """A NB201 truth folder of 8 cells with all three datasets' columns, and a README with
    published ImageNet16-120 figures in the column layout of the shared README."""
    folder = tmp_path / "truth"
    folder.mkdir()
    combos = list(itertools.islice(itertools.product(OPS[2:], repeat=6), 0, 8 * 37, 37))
    with open(folder / "nasbench201.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "arch_str", "cifar10_test", "cifar100_test", "imagenet16_120_test"])
        for i, ops in enumerate(combos):
            w.writerow([i * 3, _arch(ops), 90 + i * 0.1, 70 + i * 0.2, 40 + i * 0.3])
    (folder / "README.md").write_text(
        "| proxy | NB201 C10 | NB201 IN16 |\n|---|---|---|\n| #params | .57/.75 | .52/.70 |\n")
    return folder


def _args(truth, out, *extra):
    return ["bench", "proxies", "--space", "nb201", "--truth", str(truth), "--sample", "4", "--proxies", "params",
            "--batch-size", "4", "--out", str(out), *extra]


def test_a_fresh_run_never_overwrites_an_earlier_one(cli, truth, tmp_path):
    out = tmp_path / "run"
    assert cli(*_args(truth, out, "--proxies", "params,flops"))[0] == 0
    before = (out / "scores.jsonl").read_text()
    code, _, err = cli(*_args(truth, out))  # a run with params only, same --out, no --resume
    assert code == 2 and "--resume" in err and "another --out" in err
    assert (out / "scores.jsonl").read_text() == before
    code, stdout, _ = cli(*_args(truth, out, "--resume", "--json"))  # with --resume it reuses them
    assert code == 0 and json.loads(stdout)["archs_scored"] == 4
    assert (out / "scores.jsonl").read_text() == before


def test_report_only_needs_scores(cli, truth, tmp_path):
    missing = tmp_path / "nothing"
    code, _, err = cli(*_args(truth, missing, "--report-only"))
    assert code == 2 and "nothing to report" in err and not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(*_args(truth, empty, "--report-only"))
    assert code == 2 and "nothing to report" in err and list(empty.iterdir()) == []


def test_out_pointing_at_a_file_is_a_one_line_error(cli, truth, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("mine\n")
    code, _, err = cli(*_args(truth, f))
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert f.read_text() == "mine\n"


def test_a_row_cut_mid_write_is_rescored(truth, tmp_path):
    cfg = dict(space="nb201", dataset="cifar10", sample=4, seed=0, proxies=("params",), batch_size=4)
    out = tmp_path / "run"
    run_bench(BenchConfig(**cfg), truth, out=out)
    lines = (out / "scores.jsonl").read_text().splitlines(keepends=True)
    cut = "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]  # the last row killed mid-write
    (out / "scores.jsonl").write_text(cut)
    res = run_bench(BenchConfig(**cfg), truth, out=out, resume=True)
    assert res.archs_scored == 4 and "resumed: 3 of 4" in res.notes[0]
    rows = read_rows(out / "scores.jsonl")
    assert sorted(r["index"] for r in rows) == sorted({r["index"] for r in rows}) and len(rows) == 4
    assert all(json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines())


def test_imagenet16_120_from_the_users_csv(cli, truth, tmp_path):
    from zenfx.zoo.nb201 import nb201

    out = tmp_path / "in16"
    code, stdout, _ = cli(*_args(truth, out, "--dataset", "imagenet16-120", "--json"))
    assert code == 0
    res = json.loads(stdout)
    assert res["config"]["dataset"] == "imagenet16-120" and res["config"]["resolution"] == 16
    corr = {c["proxy"]: c for c in res["correlations"]}
    assert corr["params"]["n"] == 4
    assert (corr["params"]["published_tau"], corr["params"]["published_rho"]) == (0.52, 0.70)
    rows = read_rows(out / "scores.jsonl")
    accs = {r["index"]: r["accuracy"] for r in rows}
    with open(truth / "nasbench201.csv") as fh:
        col = {int(r["index"]): float(r["imagenet16_120_test"]) for r in csv.DictReader(fh)}
        assert all(accs[i] == col[i] for i in accs)  # the ImageNet16-120 column, not CIFAR's
    r = rows[0]  # 120 classes: the classifier is 64x120 + 120
    assert r["scores"]["params"] == sum(p.numel() for p in nb201(r["arch"], 120).parameters())
    code, stdout, _ = cli(*_args(truth, tmp_path / "r24", "--dataset", "imagenet16-120", "--resolution", "24",
                                 "--json"))
    assert code == 0 and json.loads(stdout)["config"]["resolution"] == 24


def test_imagenet16_120_column_missing_names_it(cli, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "natsbench_sss.csv").write_text("index,channels,cifar100_test\n0,8:8:8:8:8,50.0\n")
    code, _, err = cli("bench", "proxies", "--space", "nats-sss", "--dataset", "imagenet16-120", "--truth",
                       str(folder), "--sample", "1", "--proxies", "params")
    assert code == 2 and "imagenet16_120_test" in err


def test_cli_default_proxies_match_the_engine():
    from zenfx.cli.cmd_bench import DEFAULT_PROXIES as CLI_DEFAULT

    assert tuple(CLI_DEFAULT) == tuple(DEFAULT_PROXIES)
