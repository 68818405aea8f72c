"""`zenfx bench search --space nb201`: the operation-edit mutator, the truth table, determinism of the
bench for a seed, and the CLI end to end on a tiny truth CSV (never ../shared)."""

from __future__ import annotations

import json
import random

import pytest

from zenfx.errors import UsageError
from zenfx.search.nb201 import EDGES, OPS, Nb201Ops, all_cells, arch_of, cell_genome, default_start, ops_of, truth_table

CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# a handful of cells: one edit apart from each other along a chain, so the evolution can move
CELLS = [CONV3]
for _i, _op in enumerate(["skip_connect", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_1x1"]):
    _ops = ops_of(CELLS[-1])
    _ops[_i] = _op
    CELLS.append(arch_of(_ops))


def test_ops_and_arch_strings_round_trip_and_match_the_zoo():
    from zenfx.zoo.nb201 import OPS as ZOO_OPS
    from zenfx.zoo.nb201 import parse_arch

    assert OPS == ZOO_OPS
    cells = all_cells()
    assert len(cells) == 5**6 == len(set(cells))
    for a in random.Random(0).sample(cells, 50):
        assert arch_of(ops_of(a)) == a
        assert [(op, src) for node in parse_arch(a) for op, src in node] == list(
            zip(ops_of(a), [s for _, s in EDGES], strict=True))
    with pytest.raises(UsageError):
        ops_of("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|")
    with pytest.raises(UsageError):
        ops_of(CONV3.replace("nor_conv_3x3~1", "conv_5x5~1", 1))
    with pytest.raises(UsageError):
        ops_of(CONV3.replace("~1", "~0", 1))


def test_one_edit_changes_exactly_one_edge_and_is_deterministic():
    op = Nb201Ops(100)
    g = cell_genome(CONV3, 100)
    rng_a, rng_b = random.Random(7), random.Random(7)
    for _ in range(200):
        child = op.mutate(g, rng_a, 1)
        assert child.to_dict() == op.mutate(g, rng_b, 1).to_dict()
        before, after = ops_of(g.kwargs["arch"]), ops_of(child.kwargs["arch"])
        assert sum(x != y for x, y in zip(before, after, strict=True)) == 1
        assert op.key(child) == "nb201:" + child.kwargs["arch"]
        assert child.kwargs["num_classes"] == 100 and tuple(child.input_size) == (3, 32, 32)
        g = child
    two = op.mutate(cell_genome(CONV3, 100), random.Random(1), 2)
    assert sum(x != y for x, y in zip(ops_of(CONV3), ops_of(two.kwargs["arch"]), strict=True)) <= 2


def test_identical_cells_share_one_key_and_the_mutator_stays_in_the_allowed_cells():
    op = Nb201Ops(10, 16, allowed=frozenset(CELLS))
    assert op.key(cell_genome(CELLS[1], 10, 16)) == op.key(cell_genome(CELLS[1], 10, 16))
    assert op.key(cell_genome(CELLS[1], 10, 16)) != op.key(cell_genome(CELLS[2], 10, 16))
    rng = random.Random(3)
    for _ in range(30):
        assert op.mutate(cell_genome(CELLS[2], 10, 16), rng, 1).kwargs["arch"] in CELLS


def test_the_default_start_avoids_none_edges_and_is_seeded():
    cells = all_cells()
    assert default_start(cells, 4) == default_start(cells, 4)
    assert all("none~" not in default_start(cells, s) for s in range(20))
    assert len({default_start(cells, s) for s in range(20)}) > 10


def _tiny_csv(tmp_path, extra_col: bool = True):
    lines = ["index,arch_str,cifar10_test,cifar100_test"]
    for i, a in enumerate(CELLS):
        lines.append(f"{i},{a},{90 - i},{70 - 2 * i}")
    lines.append(f"{len(CELLS)},{arch_of(['none'] * 6)},,")  # no truth: outside the space
    p = tmp_path / "nasbench201.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_the_truth_table_reads_the_dataset_column_and_skips_missing_values(tmp_path):
    p = _tiny_csv(tmp_path)
    assert truth_table(tmp_path, "cifar100") == {a: 70.0 - 2 * i for i, a in enumerate(CELLS)}
    assert truth_table(p, "cifar10")[CELLS[0]] == 90.0
    q = tmp_path / "own.csv"
    q.write_text(f"arch_str,cifar100\n{CONV3},71.5\n")
    assert truth_table(q, "cifar100") == {CONV3: 71.5}
    with pytest.raises(UsageError):
        truth_table(q, "cifar10")
    with pytest.raises(UsageError):
        truth_table(p, "imagenet16-120")


def _bench(tmp_path, out, **kw):
    from zenfx.search.nb201 import run_bench_search

    return run_bench_search(_tiny_csv(tmp_path), dataset="cifar100", candidates=6, runs=2, population=3, round_size=3,
                            batch_size=4, resolution=16, start=CELLS[4], workers=0, out=out, **kw)


def test_the_bench_is_deterministic_for_a_seed(tmp_path):
    a = _bench(tmp_path, tmp_path / "a", proxies=["zen"]).to_dict()
    b = _bench(tmp_path, tmp_path / "b", proxies=["zen"]).to_dict()
    for r in (a, b):
        r["proxies"][0].pop("seconds")
    assert a == b
    assert a["space"] == "nb201" and a["dataset"] == "cifar100" and a["budget_params"] is None
    assert a["in_budget"] == len(CELLS) and a["best_arch"] == CONV3 and a["best_in_budget"] == 70.0
    evo = a["proxies"][0]["evolution"]
    assert len(evo["archs"]) == 2 and all(x in CELLS for x in evo["archs"])
    assert all(0 < p <= 100 for p in evo["percentiles"])


def test_cli_end_to_end_on_a_tiny_truth_csv(tmp_path, cli):
    _tiny_csv(tmp_path)
    args = ["bench", "search", "--space", "nb201", "--truth", str(tmp_path), "--dataset", "cifar10", "--proxy",
            "params,az", "--candidates", "6", "--runs", "1", "--population", "3", "--round", "3", "--batch-size", "4",
            "--resolution", "16", "--workers", "0"]
    code, stdout, stderr = cli(*args, "--out", tmp_path / "runs", "--json")
    assert code == 0, stderr
    res = json.loads(stdout)
    assert res["dataset"] == "cifar10" and [p["proxy"] for p in res["proxies"]] == ["params", "az"]
    for p in res["proxies"]:
        for m in ("evolution", "random"):
            assert len(p[m]["archs"]) == 1 and p[m]["archs"][0] in CELLS
            assert 0 < p[m]["percentiles"][0] <= 100
    # params in a space without budget: the largest cell, all nor_conv_3x3, wins whenever it is drawn
    assert CONV3 in res["proxies"][0]["evolution"]["archs"] + res["proxies"][0]["random"]["archs"]
    code, stdout, stderr = cli(*args, "--proxy", "params", "--out", tmp_path / "runs2")
    assert code == 0, stderr
    assert "NAS-Bench-201 cifar10" in stdout and "percentile" in stdout
    code, _, stderr = cli(*args, "--budget-params", "1M", "--out", tmp_path / "runs3")
    assert code != 0 and "budget" in stderr


# two equal conv branches merge into node 3 after a skip into node 1: the residual pass cannot tell
# the main branch, so the cell has no VCNN form (about one NB201 cell in six is like this)
AMBIGUOUS = "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _evaluate(arch: str, proxy: str, **budgets):
    from zenfx.search.budget import Budgets
    from zenfx.search.candidate import EvalSettings, evaluate, init_worker

    settings = EvalSettings(proxy=proxy, batch_size=4, num_classes=10, budgets=Budgets(**budgets).to_dict())
    state = init_worker(settings.to_dict())
    return evaluate(state, cell_genome(arch, 10, resolution=16).to_dict())


def test_a_cell_without_vcnn_form_is_scored_by_proxies_of_the_original_graph():
    from zenfx.errors import NotConvertibleError
    from zenfx.pipeline import load_and_trace, to_vcnn

    with pytest.raises(NotConvertibleError):
        from zenfx.genome import build

        to_vcnn(load_and_trace(build(cell_genome(AMBIGUOUS, 10, resolution=16)), input_size=(3, 16, 16)).gm)
    az = _evaluate(AMBIGUOUS, "az")
    assert az["status"] == "scored", az["error"]
    assert az["figures"]["depth"] is None and az["figures"]["params"] > 0
    # zen scores the VCNN graph, and a depth budget needs the depth: both fail, at the convert stage
    for out in (_evaluate(AMBIGUOUS, "zen"), _evaluate(AMBIGUOUS, "params", depth=30)):
        assert out["status"] == "failed" and out["stage"] == "convert"
    # a convertible cell still gets its depth
    assert _evaluate(CONV3, "az")["figures"]["depth"] > 0
