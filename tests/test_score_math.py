"""The mathematics of Zen-Score and Φ-score on tiny plain nets (fast: 16x16..32x32 inputs).

The official-mode check rebuilds Algorithm 1 by hand (unfold-matmul convolutions, hand-written
train-mode BatchNorm with PyTorch's unbiased running-variance update, float64) from the documented
draw protocol of ``zenfx.proxies.zen``; it shares no code with the implementation under test.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zenfx
from zenfx.errors import NumericalError, UsageError
from zenfx.proxies.base import ProxyContext
from zenfx.proxies.phi import phi_terms, remove_batchnorm_
from zenfx.proxies.zen import ZEN_RNG_OFFSET, zen_terms
from zenfx.scoring import mean_ci95, with_head

SIZE = (3, 32, 32)


pytestmark = pytest.mark.usefixtures("one_thread")


def plain(depth: int = 4, width: int = 16, bn: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for _ in range(depth):
        layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False)]
        layers += [nn.BatchNorm2d(width)] if bn else []
        layers += [nn.ReLU()]
        cin = width
    return nn.Sequential(*layers)


def bottleneck_net(mid: int, blocks: int = 2, width: int = 32) -> nn.Sequential:
    """Plain (residual-free) ResNet-style bottlenecks 1x1 -> 3x3 -> 1x1 with bottleneck width ``mid``."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for _ in range(blocks):
        for cin, cout, k in ((width, mid, 1), (mid, mid, 3), (mid, width, 1)):
            layers += [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


def zen(net: nn.Module, **kw) -> float:
    kw.setdefault("input_size", SIZE)
    kw.setdefault("batch_size", 8)
    kw.setdefault("repeat", 2)
    return zenfx.score(net, "zen", **kw).value


# --------------------------------------------------------------------------- hand computation


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    b, _, h, wd = x.shape
    o, _, k, _ = w.shape
    cols = F.unfold(x, k, padding=pad, stride=stride)  # (B, C*k*k, L)
    out = w.reshape(o, -1) @ cols
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    return out.reshape(b, o, ho, wo)


def _bn_train(x: torch.Tensor, running_var: torch.Tensor, eps: float, momentum: float):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    n = x.numel() // x.shape[1]
    var_b = ((x - mean) ** 2).sum(dim=(0, 2, 3)) / n
    var_u = var_b * n / (n - 1)
    y = (x - mean) / torch.sqrt(var_b.view(1, -1, 1, 1) + eps)
    return y, (1 - momentum) * running_var + momentum * var_u, var_b


def _tiny() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 5, 1, bias=True),
    )


def _by_hand(seed: int, batch: int, size: tuple[int, int, int], gamma: float, mode: str) -> float:
    g = ProxyContext(input_size=size, batch_size=batch, seed=seed).generator(ZEN_RNG_OFFSET)
    shapes = [(4, 3, 3, 3), (6, 4, 3, 3), (5, 6, 1, 1)]
    ws = [torch.empty(s).normal_(generator=g).double() for s in shapes]
    x = torch.randn((batch, *size), generator=g)
    e = torch.randn((batch, *size), generator=g)
    x2 = (x + gamma * e).double()
    x = x.double()
    rv = [torch.ones(4, dtype=torch.float64), torch.ones(6, dtype=torch.float64)]
    seen: list[torch.Tensor] = []

    def f(inp: torch.Tensor, first: bool) -> torch.Tensor:
        h = _conv(inp, ws[0], 1, 1)
        h, rv[0], vb0 = _bn_train(h, rv[0], 1e-5, 0.1)
        h = h.clamp_min(0)
        h = _conv(h, ws[1], 2, 1)
        h, rv[1], vb1 = _bn_train(h, rv[1], 1e-5, 0.1)
        h = h.clamp_min(0)
        if first:
            seen.extend([vb0, vb1])
        return _conv(h, ws[2], 1, 0)

    delta = (f(x, True) - f(x2, False)).abs().sum(dim=(1, 2, 3)).mean()
    stats = rv if mode == "official" else seen
    return float(torch.log(delta) + sum(torch.log(torch.sqrt(s.mean())) for s in stats))


@pytest.mark.parametrize("mode", ["official", "batch"])
def test_zen_equals_independent_hand_computation(mode):
    for seed in (0, 7):
        got = zenfx.score(_tiny(), "zen", input_size=(3, 16, 16), batch_size=4, repeat=1, seed=seed,
                          bn_stat=mode).value
        want = _by_hand(seed, 4, (3, 16, 16), 1e-2, mode)
        assert got == pytest.approx(want, abs=2e-4), (mode, seed)


def test_official_running_var_formula():
    """running_var after the two passes is 0.81 + 0.09*v1 + 0.1*v2 (unbiased batch variances)."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).train()
    a, b = torch.randn(4, 3, 5, 5) * 3, torch.randn(4, 3, 5, 5) * 2
    with torch.no_grad():
        bn(a)
        bn(b)
    v1, v2 = a.var(dim=(0, 2, 3), unbiased=True), b.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_var, 0.81 + 0.09 * v1 + 0.1 * v2)


# --------------------------------------------------------------------------- determinism, repeats


def test_seeded_determinism_bit_for_bit():
    net = plain(3)
    a = zenfx.score(net, "zen,phi", input_size=SIZE, batch_size=4, repeat=3, seed=5)
    b = zenfx.score(copy.deepcopy(net), "zen,phi", input_size=SIZE, batch_size=4, repeat=3, seed=5)
    c = zenfx.score(net, "zen", input_size=SIZE, batch_size=4, repeat=3, seed=6)
    for p in ("zen", "phi"):
        assert a[p].values == b[p].values
    assert a["zen"].values != c["zen"].values
    assert len(set(a["zen"].values)) == 3  # fresh weights and inputs every repeat


def test_repeats_are_independent_of_each_other():
    """The reused working copy leaks nothing: repeat r equals a fresh net scored at repeat r."""
    res = zenfx.score(plain(3), "zen", input_size=SIZE, batch_size=4, repeat=3, seed=2)
    from zenfx.tracing import trace

    for r in (1, 2):
        ctx = ProxyContext(input_size=SIZE, batch_size=4, seed=2, repeat_index=r)
        fresh = trace(plain(3), SIZE)
        assert res["zen"].values[r] == zen_terms(fresh, ctx)["zen"]


def test_reference_drift_without_reset():
    """The reference standalone script carries running stats over between repeats: drift upward."""
    res = zenfx.score(plain(4), "zen", input_size=SIZE, batch_size=4, repeat=4, seed=0)
    drift = zenfx.score(plain(4), "zen", input_size=SIZE, batch_size=4, repeat=4, seed=0,
                        extra={"zen_reset_bn": False})
    assert drift["zen"].values[0] == res["zen"].values[0]
    gaps = [d - r for d, r in zip(drift["zen"].values, res["zen"].values, strict=True)]
    assert gaps[1] > 0.5 and gaps[3] > gaps[1]  # running_var creeps toward the batch variance


def test_mean_ci95_matches_reference_formula():
    vals = [1.0, 2.0, 4.0]
    mean, ci, std = mean_ci95(vals)
    sd = math.sqrt(sum((v - 7 / 3) ** 2 for v in vals) / 3)  # np.std, ddof 0
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(sd)
    assert ci == pytest.approx(1.96 * sd / math.sqrt(3))
    assert mean_ci95([3.0])[1] is None


# --------------------------------------------------------------------------- Figure-2 shapes, invariances


def test_zen_rises_with_depth_and_width():
    small = dict(input_size=(3, 16, 16), batch_size=4)
    depths = [zen(plain(d, 16), **small) for d in (2, 4, 8)]
    widths = [zen(plain(3, w), **small) for w in (8, 16, 32)]
    mids = [zen(bottleneck_net(m, width=16), **small) for m in (4, 8, 16)]
    assert depths == sorted(depths) and depths[-1] - depths[0] > 3
    assert widths == sorted(widths) and widths[-1] - widths[0] > 1
    assert mids == sorted(mids) and mids[-1] - mids[0] > 1


def test_init_overwrites_weight_scale_and_bn_eps_does_not_matter():
    net = plain(4)
    base = zen(net, seed=3)
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        scaled[3].weight.mul_(1000.0)
        scaled[1].weight.mul_(-7.0)
    assert zen(scaled, seed=3) == base
    eps_net = copy.deepcopy(net)
    for m in eps_net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
    assert zen(eps_net, seed=3) == pytest.approx(base, abs=1e-3)


def test_official_and_batch_differ_by_under_one_unit_per_bn_layer():
    for depth in (2, 6):
        off = zen(plain(depth), bn_stat="official", input_size=(3, 16, 16))
        bat = zen(plain(depth), bn_stat="batch", input_size=(3, 16, 16))
        per_layer = (bat - off) / depth
        assert 0.3 < per_layer < 0.83  # 0.5*log(v/(0.81+0.19v)) -> 0.83 as v grows


# --------------------------------------------------------------------------- Φ and Theorem 1


def test_theorem1_zen_of_bn_net_tracks_phi_of_bn_free_net():
    gaps, phis = [], []
    for depth in (2, 4, 8):
        z = zen(plain(depth), bn_stat="batch", repeat=2)
        p = zenfx.score(plain(depth, bn=False), "phi", input_size=SIZE, batch_size=8, repeat=2).value
        gaps.append(z - p)
        phis.append(p)
    assert phis[-1] - phis[0] > 8  # Φ itself moves a lot with depth ...
    assert all(abs(g) < 0.75 for g in gaps)  # ... Zen follows it within a fraction of a unit
    assert max(gaps) - min(gaps) < 0.5
    # phi on the BN net removes BN itself: same as on the BN-free sister
    a = zenfx.score(plain(4), "phi", input_size=SIZE, batch_size=4, repeat=1).value
    b = zenfx.score(plain(4, bn=False), "phi", input_size=SIZE, batch_size=4, repeat=1).value
    assert a == pytest.approx(b, rel=1e-6)


def test_phi_of_bn_net_without_rescaling_stays_flat():
    ctx = ProxyContext(input_size=SIZE, batch_size=8)
    with_bn = [phi_terms(plain(d), ctx, keep_bn=True)["phi"] for d in (2, 4, 8)]
    without = [phi_terms(plain(d, bn=False), ctx)["phi"] for d in (2, 4, 8)]
    slope_bn = (with_bn[-1] - with_bn[0]) / 6
    slope_free = (without[-1] - without[0]) / 6
    # Only the centring of ReLU outputs remains: about 0.5*log(0.5/(0.5-1/(2π))) = 0.19 per layer,
    # against about 0.5*log(fan_in) = 2.1 per layer without BN.
    assert slope_free > 1.5 and abs(slope_bn) < 0.3


def test_remove_batchnorm_keeps_activation_of_bnact():
    class BNAct(nn.BatchNorm2d):
        def __init__(self, c):
            super().__init__(c)
            self.drop = nn.Identity()
            self.act = nn.ReLU()

    net = nn.Sequential(nn.Conv2d(3, 4, 3), BNAct(4))
    assert remove_batchnorm_(net) == 1
    assert isinstance(net[1], nn.Sequential) and isinstance(net[1][0], nn.ReLU)


# --------------------------------------------------------------------------- numerics, options, helpers


def test_phi_rescaling_is_exact_and_avoids_overflow():
    ctx = ProxyContext(input_size=SIZE, batch_size=4, seed=3)
    for depth in (2, 6):
        a = phi_terms(plain(depth), ctx)
        b = phi_terms(plain(depth), ProxyContext(input_size=SIZE, batch_size=4, seed=3, extra={"phi_rescale": False}))
        assert a["log_scale"] > 0 and b["log_scale"] == 0
        assert a["phi"] == pytest.approx(b["phi"], abs=1e-4)
    deep = plain(40, 32, bn=False)
    assert math.isfinite(zenfx.score(deep, "phi", input_size=(3, 8, 8), batch_size=2, repeat=1).value)


def test_overflow_raises_numerical_error_with_hint():
    deep = plain(40, 32, bn=False)  # ~sqrt(288/2) = 12x per layer: past float32's 3e38 by layer 36
    small = dict(input_size=(3, 8, 8), batch_size=2, repeat=1)
    with pytest.raises(NumericalError) as info:
        zenfx.score(deep, "phi", extra={"phi_rescale": False}, **small)
    assert "BN-free" in str(info.value)
    with pytest.raises(NumericalError) as info:
        zenfx.score(deep, "zen", dtype="bfloat16", **small)
    assert "float32" in str(info.value)
    with pytest.raises(NumericalError) as info:
        zenfx.score(deep, "zen", **small)
    assert "overflow" in str(info.value)


@pytest.mark.parametrize("kw", [dict(device="cuda:7" if torch.cuda.is_available() else "cuda"),
                                dict(dtype="float16"), dict(dtype="int8"), dict(bn_stat="running"),
                                dict(repeat=0), dict(mixup_gamma=0.0), dict(proxy="zenn")])
def test_bad_options_are_usage_errors(kw):
    kw = {"proxy": "zen", "repeat": 1, **kw}
    with pytest.raises(UsageError):
        zenfx.score(plain(2), input_size=(3, 8, 8), batch_size=2, **kw)


def test_bfloat16_on_cpu_close_to_float32():
    """bf16 keeps 8 mantissa bits, coarser than the 1% perturbation: rounding noise inflates Δ a
    little (documented in docs/score.md), so bf16 agrees with float32 to a few tenths only."""
    f32 = zen(plain(3), repeat=1)
    bf16 = zen(plain(3), repeat=1, dtype="bfloat16")
    assert bf16 == pytest.approx(f32, abs=0.3)


def test_params_and_result_dict():
    res = zenfx.score(plain(2, 8), "zen,params", input_size=SIZE, batch_size=2, repeat=2)
    d = res.to_dict()
    assert d["scores"]["params"]["value"] == 3 * 8 * 9 + 8 * 8 * 9 + 4 * 8
    assert d["scores"]["params"]["repeat"] == 1
    for key in ("model", "resolution", "batch_size", "repeat", "seed", "bn_stat", "scores", "conversion"):
        assert key in d
    assert d["resolution"] == 32 and d["scores"]["zen"]["ci95"] is not None


def test_with_head_gives_logits():
    from zenfx.tracing import trace

    gm = trace(plain(2, 8), SIZE)
    net = with_head(gm, 10)
    assert net(torch.randn(3, *SIZE)).shape == (3, 10)
