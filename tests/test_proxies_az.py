"""AZ-NAS's proxies (zenfx.proxies.az), their feature points (az_points) and rank aggregation
(zenfx.proxies.aggregate, zenfx.ranking, bench) against hand-computed small cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from zenfx.errors import UsageError
from zenfx.proxies.aggregate import aggregate_scores, members_of, parse_objectives, rank_aggregate
from zenfx.proxies.az import (
    az_measures,
    block_entropy,
    kaiming_fanin_init_,
    trainability_pair,
)
from zenfx.proxies.az_points import describe
from zenfx.proxies.base import ProxyContext, get_proxy

torch.set_num_threads(1)


# --------------------------------------------------------------------------- the measures by hand


def test_block_entropy_of_a_diagonal_covariance_by_hand():
    # channel 0 = [1,-1,1,-1], channel 1 = [2,2,-2,-2]: means 0, variances 1 and 4, covariance 0
    f = torch.tensor([[[[1.0, -1.0], [1.0, -1.0]], [[2.0, 2.0], [-2.0, -2.0]]]])
    p = np.array([0.2, 0.8])
    want = float(-(p * np.log(p + 1e-8)).sum())
    assert block_entropy(f) == pytest.approx(want, abs=1e-6)
    # the mean is removed over all B*H*W pixels: a constant offset changes nothing
    assert block_entropy(f + 3.0) == pytest.approx(want, abs=1e-5)
    # one live channel: eigenvalues (0, v) -> p = (0, 1) -> entropy 0
    g = torch.stack([torch.zeros(2, 2), torch.tensor([[1.0, -1.0], [1.0, -1.0]])]).unsqueeze(0)
    assert block_entropy(g) == pytest.approx(0.0, abs=1e-6)


def test_a_rank_deficient_covariance_and_the_clamp():
    # a 1x1 conv from 2 to 6 channels: rank 2, eigvalsh gives ~0 (sometimes negative) eigenvalues
    torch.manual_seed(0)
    f = nn.Conv2d(2, 6, 1)(torch.randn(4, 2, 8, 8)).detach()
    clamped = block_entropy(f, clamp=True)
    assert math.isfinite(clamped) and clamped <= math.log(2) + 1e-3  # two live directions at most
    ref = block_entropy(f)
    assert math.isnan(ref) or ref == pytest.approx(clamped, abs=1e-4)
    import zenfx

    net = nn.Sequential(nn.Conv2d(3, 40, 3, padding=1), nn.BatchNorm2d(40), nn.Sequential(Block(40), Block(40)))
    r = zenfx.score(net, "az_expressivity", input_size=(3, 8, 8), repeat=1, batch_size=8,
                    extra={"az_clamp_eigenvalues": True})
    assert math.isfinite(r.value)


def test_trainability_of_a_scaled_identity_is_minus_half():
    # F_out = 2 F_in with one channel: M = 2 * mean(g^2) = 2, sigma 2, score -2 - 1/2 + 2
    f_in = torch.randn(2, 1, 3, 3, requires_grad=True)
    f_out = 2 * f_in
    assert trainability_pair(f_out, f_in, torch.Generator().manual_seed(0)) == pytest.approx(-0.5, abs=1e-5)


def test_an_identity_block_scores_minus_inf():
    f_in = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert trainability_pair(f_in + 0.0, f_in, torch.Generator().manual_seed(0)) == -math.inf


def test_a_stride_is_pixel_unshuffled():
    # 2x2 average pool: g_in = g_out / 4 on each 2x2 patch; unshuffled, M is 4x1 with entries 1/4,
    # sigma = sqrt(4 / 16) = 0.5, score -0.5 - 2 + 2
    f_in = torch.randn(3, 1, 4, 4, requires_grad=True)
    f_out = nn.functional.avg_pool2d(f_in, 2)
    assert trainability_pair(f_out, f_in, torch.Generator().manual_seed(1)) == pytest.approx(-0.5, abs=1e-5)


def test_sizes_that_do_not_divide_are_padded():
    f_in = torch.randn(2, 2, 5, 5, requires_grad=True)
    f_out = nn.functional.avg_pool2d(f_in, 2, ceil_mode=True)  # 5 -> 3
    v = trainability_pair(f_out, f_in, torch.Generator().manual_seed(0))
    assert math.isfinite(v)


def test_no_path_between_blocks_is_a_zero_jacobian():
    f_in = torch.randn(2, 1, 2, 2, requires_grad=True)
    f_out = torch.randn(2, 1, 2, 2, requires_grad=True) * 1.0
    assert trainability_pair(f_out, f_in, None) == pytest.approx(-1e6 + 2, rel=1e-9)


def test_kaiming_fan_in_init():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 128, 3, bias=True), nn.BatchNorm2d(128), nn.Linear(512, 10))
    nn.init.constant_(net[1].weight, 5.0)
    kaiming_fanin_init_(net, torch.Generator().manual_seed(1))
    assert float(net[0].weight.detach().std()) == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert float(net[2].weight.detach().std()) == pytest.approx(math.sqrt(2 / 512), rel=0.05)
    assert float(net[0].bias.detach().abs().sum()) == 0 and bool((net[1].weight == 1).all())
    # generator None: the global RNG draws what nn.init.kaiming_normal_ draws, module by module
    a, b = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3)
    torch.manual_seed(7)
    kaiming_fanin_init_(a)
    torch.manual_seed(7)
    nn.init.kaiming_normal_(b.weight, mode="fan_in", nonlinearity="relu")
    assert torch.equal(a.weight, b.weight)


class Plain(nn.Module):
    """conv-BN-ReLU x2, GAP, Linear: no block, two convolution units."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1, self.c2, self.b2 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), \
            nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


def test_plain_net_measures_equal_a_hand_forward():
    net = Plain()
    kaiming_fanin_init_(net, torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 8, 8)
    f1 = torch.relu(nn.functional.batch_norm(net.c1(x), None, None, training=True))
    f2 = torch.relu(nn.functional.batch_norm(net.c2(f1), None, None, training=True))
    m = az_measures(net, x, torch.Generator().manual_seed(3), init=False)
    assert m.points.rule == "chain" and len(m.points.nodes) == 2
    e1, e2 = block_entropy(f1), block_entropy(f2)
    assert m.entropies == pytest.approx([e1, e2], abs=1e-5)
    assert m.expressivity == pytest.approx(e1 + e2, abs=1e-5)
    assert m.progressivity == pytest.approx(e2 - e1, abs=1e-5)
    # the trainability term of the one pair, with the same signs
    f1r = f1.detach().requires_grad_(True)
    f2r = torch.relu(nn.functional.batch_norm(net.c2(f1r), None, None, training=True))
    assert m.trainability == pytest.approx(trainability_pair(f2r, f1r, torch.Generator().manual_seed(3)), abs=1e-5)


# --------------------------------------------------------------------------- feature points


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.conv(x))


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8), nn.ReLU(), Block(8), nn.ReLU())
        self.head = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.blocks(self.stem(x))).mean((2, 3)))


def test_feature_points_of_residual_blocks():
    fp = describe(ResNetLike(), (3, 8, 8))
    # stem's ReLU; each block's add extended through the ReLU after it; the final BN-ReLU is no feature
    assert fp.rule == "modules" and fp.blocks == ["blocks.0", "blocks.2"]
    assert fp.names() == ["stem_2", "blocks_1", "blocks_3"]


def test_feature_points_of_nb201_cells_and_torchvision():
    from zenfx.zoo.nb201 import nb201

    for arch in ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
                 "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",  # a chain cell
                 "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"):  # a zero cell
        fp = describe(nb201(arch, 10), (3, 16, 16))
        assert len(fp.nodes) == 18, arch  # stem + 17 cells, as the reference's extract_cell_features
        assert fp.blocks == [f"cells.{i}" for i in range(17)]
        assert fp.names()[0] == "stem_1"


@pytest.mark.parametrize("name,count", [("resnet18", 9), ("mobilenet_v2", 19)])
def test_feature_points_of_torchvision(name, count):
    import torchvision

    fp = describe(getattr(torchvision.models, name)(), (3, 64, 64))
    assert len(fp.nodes) == count


def test_one_feature_point_and_none():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    m = az_measures(net, torch.randn(2, 3, 6, 6), torch.Generator().manual_seed(0))
    assert len(m.points.nodes) == 1 and math.isfinite(m.expressivity)
    assert m.progressivity == -math.inf and m.trainability == -math.inf
    with pytest.raises(UsageError, match="no feature point"):
        az_measures(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.randn(2, 3, 2, 2))


# --------------------------------------------------------------------------- as proxies


def test_the_three_share_one_pass_and_are_seeded(monkeypatch):
    import zenfx
    from zenfx.proxies import az

    calls = []
    real = az.az_measures
    monkeypatch.setattr(az, "az_measures", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = zenfx.score(ResNetLike(), "az", input_size=(3, 8, 8), repeat=2, batch_size=4, seed=5)
    assert set(r.scores) == {"az_expressivity", "az_progressivity", "az_trainability", "az_complexity"}
    assert len(calls) == 2  # one forward/backward per repeat for the three
    again = zenfx.score(ResNetLike(), "az_trainability", input_size=(3, 8, 8), repeat=2, batch_size=4, seed=5)
    assert again["az_trainability"].values == r["az_trainability"].values
    other = zenfx.score(ResNetLike(), "az_trainability", input_size=(3, 8, 8), repeat=2, batch_size=4, seed=6)
    assert other["az_trainability"].values != r["az_trainability"].values
    assert r["az_complexity"].repeat == 1 and r["az_complexity"].value > 0


class DeadBlock(nn.Module):
    """x + 0 * conv(x): the gradient through the block is exactly the identity's."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * self.conv(x)


def test_minus_inf_is_a_score_not_a_failure():
    import zenfx

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Sequential(DeadBlock(4), DeadBlock(4)))
    r = zenfx.score(net, "az_trainability", input_size=(3, 6, 6), repeat=1, batch_size=2)
    assert r.value == -math.inf
    spec = get_proxy("az_trainability")
    assert spec.inf_is_rank and spec.graph == "original" and spec.reinitializes


# --------------------------------------------------------------------------- aggregation


def test_rank_aggregate_by_hand():
    cols = {"a": [1.0, 2.0, 3.0], "b": [30.0, 20.0, 10.0]}
    got = rank_aggregate(cols)
    want = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) * 2, math.log(3 / 3) + math.log(1 / 3)]
    assert got == pytest.approx(want)
    # lower is better: flipped; ties share the average rank; NaN and None rank lowest
    assert rank_aggregate({"b": [30.0, 20.0, 10.0]}, {"b": False}) == pytest.approx(np.log([1 / 3, 2 / 3, 1]))
    assert rank_aggregate({"a": [5.0, 5.0, 1.0]}) == pytest.approx(np.log([2.5 / 3, 2.5 / 3, 1 / 3]))
    assert rank_aggregate({"a": [float("nan"), None, 1.0, -math.inf]}) == pytest.approx(
        np.log([2 / 4, 2 / 4, 4 / 4, 2 / 4]))


def test_objectives_and_members():
    from zenfx.proxies.az import AZ_MEMBERS

    assert members_of("az") == AZ_MEMBERS
    assert members_of("az") == ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
    assert members_of("zen+zico") == ("zen", "zico")
    objs = parse_objectives("zen,az,zen+params")
    assert [o.name for o in objs] == ["zen", "az", "zen+params"]
    assert [o.aggregated for o in objs] == [False, True, True]
    with pytest.raises(UsageError):
        members_of("zen+nosuch")
    rows = [{"zen": 1.0, "params": 3.0}, {"zen": 2.0, "params": 1.0}]
    assert aggregate_scores("zen+params", rows) == pytest.approx([math.log(1 / 2), math.log(1 / 2)])


def test_rank_models_and_cli(cli):
    import zenfx

    nets = [ResNetLike(), Plain()]
    res = zenfx.rank_models(nets, "az,params", names=["res", "plain"], input_size=(3, 8, 8), repeat=1,
                            batch_size=4)
    assert set(res.values) == {"az", "params"} and len(res.values["az"]) == 2
    assert max(res.values["az"]) <= 0.0
    assert res.ranking("params") == ["res", "plain"]
    code, stdout, _ = cli("score", "zoo:cifar_resnet20", "zoo:cifar_resnet32", "--proxy", "az", "-r", "16",
                          "--repeat", "1", "-b", "4", "--json")
    assert code == 0, stdout
    doc = json.loads(stdout)
    assert doc["ranking"]["az"] and len(doc["values"]["az"]) == 2 and doc["objectives"][0]["aggregated"]


def test_bench_correlates_an_aggregate_next_to_its_members():
    from zenfx.bench import correlate

    rows = [{"index": i, "accuracy": float(i),
             "scores": {"zen": float(i), "params": float(i % 3)}, "seconds": {"zen": 0.5, "params": 0.1}}
            for i in range(12)]
    rows[3]["scores"]["zen"] = None
    c = {x.proxy: x for x in correlate(rows, ["zen", "params"], {}, gaussian=True, aggregates=["zen+params"])}
    agg = c["zen+params"]
    assert agg.n == 12 and agg.failures == 1 and agg.mean_seconds == pytest.approx(0.6)
    x = aggregate_scores("zen+params", [r["scores"] for r in rows])
    from scipy import stats

    assert agg.kendall_tau == pytest.approx(stats.kendalltau(x, [r["accuracy"] for r in rows]).statistic)


def test_a_context_without_shared_state_still_scores():
    ctx = ProxyContext(input_size=(3, 8, 8), batch_size=2)
    assert math.isfinite(get_proxy("az_expressivity").fn(ResNetLike(), ctx))


def test_bench_proxies_end_to_end_with_az(tmp_path):
    from pathlib import Path

    from zenfx.bench import BenchConfig, run_bench

    truth = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (truth / "nasbench201.csv").is_file():
        pytest.skip("ground truth not in ../shared/data")
    cfg = BenchConfig(space="nb201", dataset="cifar10", sample=5, seed=2, proxies=("params", "az"), batch_size=4,
                      resolution=8)
    res = run_bench(cfg, truth, out=tmp_path / "b")
    names = [c.proxy for c in res.correlations]
    assert names[0] == "az" and set(names) == {"az", "params", "az_expressivity", "az_progressivity",
                                                "az_trainability", "az_complexity"}
    assert res.config.aggregates == ("az",) and res.correlations[0].n == 5


def test_the_clamped_variants_equal_the_clamp_option_and_aggregate_as_az_clamped():
    # a stem wider than its 27-dimensional input (3x3 conv on 3 channels, 40 out): the reference's
    # entropy can be -inf there; az_*_clamped is the az_clamp_eigenvalues option under its own name
    import zenfx
    from zenfx.proxies.aggregate import members_of

    net = nn.Sequential(nn.Conv2d(3, 40, 3, padding=1), nn.BatchNorm2d(40), nn.Sequential(Block(40), Block(40)))
    kw = dict(input_size=(3, 8, 8), repeat=1, batch_size=8)
    for attr in ("expressivity", "progressivity", "trainability"):
        named = zenfx.score(net, f"az_{attr}_clamped", **kw).value
        option = zenfx.score(net, f"az_{attr}", extra={"az_clamp_eigenvalues": True}, **kw).value
        assert named == option and math.isfinite(named)
    assert zenfx.score(net, "az_expressivity", **kw).value == -math.inf  # the reference's numerics here
    assert members_of("az_clamped") == ("az_expressivity_clamped", "az_progressivity_clamped",
                                        "az_trainability_clamped", "az_complexity")
