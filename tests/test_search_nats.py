"""`zenfx bench search` pieces: exact NATS-SSS parameter counts without building every network, the
five-width mutation operator, and a tiny end-to-end run against the ground truth (when present)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zenfx.search.nats import WIDTHS, NatsWidths, _nats_genome, all_archs, arch_params, channels_of, default_start
from zenfx.zoo.natsbench import nats_sss

TRUTH = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("arch", ["8:8:8:8:8", "64:64:64:64:64", "8:16:24:32:40", "56:8:64:16:48"])
def test_parameter_counts_match_the_built_network(arch):
    net = nats_sss(arch)
    assert arch_params(arch) == sum(p.numel() for p in net.parameters())
    assert channels_of(net) == arch


def test_the_mutation_operator_stays_on_the_grid_and_keys_by_channels():
    op = NatsWidths()
    rng = random.Random(0)
    g = _nats_genome("32:32:32:32:32")
    for _ in range(50):
        child = op.mutate(g, rng, 2)
        cs = [int(c) for c in child.kwargs["channels"].split(":")]
        assert len(cs) == 5 and all(c in WIDTHS for c in cs)
        assert op.key(child) == "nats:" + child.kwargs["channels"]
        g = child
    assert len(all_archs()) == 8**5
    assert default_start({a: arch_params(a) for a in ("40:40:40:40:40", "32:32:32:32:32", "8:8:8:8:8",
                                                       "16:16:16:16:16", "24:24:24:24:24", "48:48:48:48:48",
                                                       "56:56:56:56:56", "64:64:64:64:64")},
                         arch_params("40:40:40:40:40")) == "40:40:40:40:40"


@pytest.mark.skipif(not (TRUTH / "natsbench_sss.csv").exists(), reason="NATS-Bench-SSS ground truth not present")
def test_bench_search_end_to_end_with_the_params_proxy(tmp_path):
    from zenfx.search.nats import run_bench_search

    res = run_bench_search(TRUTH, proxies=["params"], candidates=8, runs=1, population=4, round_size=4,
                           batch_size=8, workers=0, out=tmp_path)
    assert res.in_budget == 16_384 and res.best_in_budget == pytest.approx(68.18)
    evo = res.proxies[0].evolution
    assert len(evo.archs) == 1 and arch_params(evo.archs[0]) <= res.budget_params
    assert 0 < evo.percentiles[0] <= 100
