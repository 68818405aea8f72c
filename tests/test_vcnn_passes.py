"""Each VCNN pass on small hand-made graphs: what it rewrites, what it records, what it refuses."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zenfx.errors import NotConvertibleError, NotTraceableError
from zenfx.graph import is_batchnorm, is_non_relu_activation, is_residual_add, is_tensor_mul
from zenfx.pipeline import to_vcnn
from zenfx.vcnn import Change, VCNNResult

SIZE = (3, 32, 32)


def cbr(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Head(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def assert_vanilla(res: VCNNResult) -> None:
    gm = res.gm
    gm.graph.lint()
    for n in gm.graph.nodes:
        assert not is_residual_add(n), n
        assert not is_non_relu_activation(gm, n), n
    assert res.verdict != "not_convertible", res.reasons


# --------------------------------------------------------------------------- residual


class Res(nn.Module):
    def __init__(self, shortcut_first: bool, projection: bool) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        if projection:
            self.main = nn.Sequential(cbr(8, 16, s=2), nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16))
            self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        else:
            self.main = nn.Sequential(cbr(8, 8), nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8))
            self.proj = nn.Identity()
        self.first = shortcut_first
        self.head = Head(16 if projection else 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a, b = self.main(x), self.proj(x)
        y = b + a if self.first else a + b
        return self.head(torch.relu(y))


@pytest.mark.parametrize("shortcut_first", [False, True])
@pytest.mark.parametrize("projection", [False, True])
def test_residual_keeps_main_branch_regardless_of_argument_order(shortcut_first, projection):
    net = Res(shortcut_first, projection).eval()
    res = to_vcnn(net, SIZE)
    assert_vanilla(res)
    [ch] = [c for c in res.changes if c.kind == "residual"]
    assert "main" in ch.detail and ("projection" in ch.detail) == projection
    assert not any(name.startswith("proj") for name, _ in res.gm.named_modules())  # dead branch modules removed
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        expected = torch.relu(net.main(net.stem(x)))
        assert torch.equal(res.gm(x), expected)


class Tie(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.a, self.b = cbr(8, 8), cbr(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return (self.a(x) + self.b(x)).mean((2, 3))


def test_residual_tie_is_a_reason_not_a_guess():
    res = to_vcnn(Tie().eval(), SIZE, strict=False)
    assert res.verdict == "not_convertible"
    assert any(r.startswith("ambiguous residual") for r in res.reasons)
    with pytest.raises(NotConvertibleError) as info:
        to_vcnn(Tie().eval(), SIZE)
    assert info.value.exit_code == 4 and any("ambiguous residual" in r for r in info.value.reasons)


# --------------------------------------------------------------------------- gating


class ECA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(x, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * torch.sigmoid(y).expand_as(x)


class CBAM(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)) + self.fc(x.amax((2, 3), keepdim=True)))
        x = x * ca
        sa = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(sa))


class Gated(nn.Module):
    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.stem, self.gate, self.body = cbr(3, 8), gate, cbr(8, 8)
        self.head = Head(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.gate(self.stem(x))))


def _timm_gates() -> list:
    timm = pytest.importorskip("timm")
    from timm.layers import EcaModule, EffectiveSEModule, SEModule, SqueezeExcite
    from timm.layers.cbam import CbamModule, LightCbamModule

    del timm
    return [SqueezeExcite(8), SEModule(8), EffectiveSEModule(8), EcaModule(8), CbamModule(8),
            LightCbamModule(8)]


@pytest.mark.parametrize("which", ["eca", "cbam", "timm"])
def test_gating_variants_become_the_main_operand(which):
    gates = {"eca": [ECA()], "cbam": [CBAM(8)]}.get(which) or _timm_gates()
    for gate in gates:
        net = Gated(gate).eval()
        res = to_vcnn(net, SIZE)
        assert_vanilla(res)
        assert res.counts["gate"] >= 1, type(gate).__name__
        assert not any(is_tensor_mul(n) for n in res.gm.graph.nodes)
        x = torch.randn(2, *SIZE)
        with torch.no_grad():
            assert torch.equal(res.gm(x), net.body(net.stem(x))), type(gate).__name__


# --------------------------------------------------------------------------- activations and norms


class Acts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3, self.c4 = (nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1),
                                              nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1))
        self.hs, self.gn = nn.Hardswish(), nn.GroupNorm(2, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.c1(x))
        x = self.hs(self.gn(self.c2(x)))
        x = self.c3(x)
        x = x * torch.sigmoid(x)  # swish written out, as timm's functional swish traces
        x = F.gelu(self.c4(x)).sigmoid()
        return x.mean((2, 3))


def test_activations_become_relu_and_group_norm_becomes_bn():
    res = to_vcnn(Acts().eval(), SIZE)
    assert_vanilla(res)
    assert res.counts["activation"] == 5 and res.counts["norm_replaced"] == 1
    assert res.verdict == "convertible_with_approximations"
    assert isinstance(res.gm.get_submodule("gn"), nn.BatchNorm2d)
    kept = to_vcnn(Acts().eval(), SIZE, keep_norms=True)
    assert isinstance(kept.gm.get_submodule("gn"), nn.GroupNorm) and kept.counts["norm_kept"] == 1


def test_timm_batchnorm_act_becomes_module_bn_and_relu():
    timm = pytest.importorskip("timm")
    from timm.layers import BatchNormAct2d

    net = nn.Sequential(nn.Conv2d(3, 8, 3), BatchNormAct2d(8, act_layer=nn.SiLU), nn.AdaptiveAvgPool2d(1))
    res = to_vcnn(net.eval(), SIZE)
    assert_vanilla(res)
    assert res.bn_count == 1 and res.counts["bn_module"] == 1 and res.counts["activation"] == 1
    assert type(res.gm.get_submodule("1")) is nn.BatchNorm2d
    del timm


class ChannelsLastLN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.ln, self.fc = nn.Conv2d(3, 8, 3, 1, 1), nn.LayerNorm(8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).permute(0, 2, 3, 1)
        x = self.fc(F.gelu(self.ln(x))).permute(0, 3, 1, 2)
        return x.mean((2, 3))


def test_layer_norm_over_channels_becomes_bn_over_the_same_channels():
    res = to_vcnn(ChannelsLastLN().eval(), SIZE)
    bn = res.gm.get_submodule("ln")
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 8
    assert res.bn_count == 1 and res.gm(torch.randn(2, *SIZE)).shape == (2, 8, 32, 32)


# --------------------------------------------------------------------------- identity wrappers, attention, head


class Wrappers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = cbr(3, 8)
        self.drop = nn.Dropout(0.5)
        self.gamma = nn.Parameter(torch.full((8,), 1e-5))
        self.body = cbr(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x + self.gamma.reshape(1, -1, 1, 1) * self.drop(F.dropout2d(self.body(x), 0.1, self.training))
        return x.mean((2, 3))


def test_dropout_and_layer_scale_become_identity():
    res = to_vcnn(Wrappers().eval(), SIZE)
    assert_vanilla(res)
    assert res.counts["identity"] >= 2  # nn.Dropout and the layer-scale multiply (F.dropout2d vanishes at trace)
    assert not any(n.op == "get_attr" for n in res.gm.graph.nodes)


class AttnBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 16, s=2)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.conv = cbr(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        x = t.transpose(1, 2).reshape(b, c, h, w)
        return self.conv(x).mean((2, 3))


def test_attention_with_a_path_around_it_is_stripped_and_reported():
    res = to_vcnn(AttnBlock().eval(), SIZE)
    assert res.verdict == "convertible_with_approximations"
    assert res.counts["attention"] == 1 and res.counts["residual"] == 0
    assert any("attention stripped" in a for a in res.approximations)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in res.gm.modules())


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = cbr(3, 8, 1), cbr(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1).mean((2, 3))


def test_concat_merge_is_not_convertible_with_the_concat_reason():
    res = to_vcnn(Inception().eval(), SIZE, strict=False)
    assert res.verdict == "not_convertible"
    assert res.reasons[0].startswith("branches merged by concat")


def test_head_cut_without_global_pool_is_said():
    net = nn.Sequential(cbr(3, 8), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    res = to_vcnn(net.eval(), SIZE)
    assert res.output_shape == (1, 8, 16, 16)
    assert any("no global average pool" in n for n in res.notes)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv(x)
        return -self.conv(x)


def test_untraceable_model():
    with pytest.raises(NotTraceableError):
        to_vcnn(Untraceable(), SIZE)
    res = to_vcnn(Untraceable(), SIZE, strict=False)
    assert res.verdict == "not_convertible" and res.reasons[0].startswith("untraceable") and res.gm is None


# --------------------------------------------------------------------------- API contract


def test_caller_model_is_never_mutated_and_inputs_forms():
    from zenfx.pipeline import load_and_trace

    net = Acts().eval()
    before = copy.deepcopy(net.state_dict())
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        y0 = net(x)
    tm = load_and_trace(net, input_size=SIZE)
    gm_code = tm.gm.code
    for arg in (net, tm, tm.gm):
        res = to_vcnn(arg, SIZE)
        assert res.counts["activation"] == 5
    assert isinstance(net.hs, nn.Hardswish) and isinstance(net.gn, nn.GroupNorm)
    assert tm.gm.code == gm_code and any(n.target is F.silu for n in tm.gm.graph.nodes)
    with torch.no_grad():
        assert torch.equal(net(x), y0)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_result_serialises():
    res = to_vcnn(Res(False, True).eval(), SIZE)
    d = res.to_dict()
    assert d["verdict"] == "convertible" and d["counts"]["residual"] == 1 and d["bn_count"] == res.bn_count == 3
    assert isinstance(res.changes[0], Change)
    assert set(res.changes[0].to_dict()) >= {"pass", "node", "kind", "kept", "dropped", "detail"}
    assert res.raise_if_not_convertible() is res
    assert sum(1 for n in res.gm.graph.nodes if is_batchnorm(res.gm, n)) == 3


def test_leaf_traced_batchnorm_act_and_opaque_modules():
    """timm's leaf-aware trace keeps BatchNormAct2d whole: its .act still becomes ReLU; unknown blocks block."""
    pytest.importorskip("timm")
    from timm.layers import BatchNormAct2d

    from zenfx.tracing import TRACER_LEAF, PathTrackingTracer, propagate_shapes, run_tracer

    class Opaque(nn.Module):  # stands in for MobileVitBlock & co: a block fx cannot see into
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x)

    def leaf_trace(net: nn.Module, leaves: tuple) -> torch.fx.GraphModule:
        gm = run_tracer(net, PathTrackingTracer(leaf_types=leaves), TRACER_LEAF)
        return propagate_shapes(gm, SIZE)

    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), BatchNormAct2d(8, act_layer=nn.SiLU), nn.AdaptiveAvgPool2d(1)).eval()
    res = to_vcnn(leaf_trace(net, (BatchNormAct2d,)), SIZE)
    assert_vanilla(res)
    assert isinstance(res.gm.get_submodule("1"), BatchNormAct2d) and isinstance(res.gm.get_submodule("1.act"), nn.ReLU)
    assert res.bn_count == 1 and res.counts["activation"] == 1
    assert isinstance(net[1].act, nn.SiLU)  # the caller's module is untouched

    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), Opaque(), nn.AdaptiveAvgPool2d(1)).eval()
    res = to_vcnn(leaf_trace(net, (Opaque,)), SIZE, strict=False)
    assert res.verdict == "not_convertible" and res.reasons[0].startswith("opaque module")


class RMSAndStar(nn.Module):
    """RMSNorm written out (timm's RmsNorm2d traces to this) and StarReLU (s * relu(x) ** 2 + b)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)
        self.w = nn.Parameter(torch.ones(8))
        self.s, self.b = nn.Parameter(torch.ones(1)), nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)
        x = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * self.w.reshape(1, -1, 1, 1)
        x = self.s * torch.relu(self.c2(x)) ** 2 + self.b
        return x.mean((2, 3))


def test_written_out_rms_norm_becomes_bn_and_star_relu_becomes_relu():
    res = to_vcnn(RMSAndStar().eval(), SIZE)
    assert_vanilla(res)
    assert res.counts["norm_replaced"] == 1 and res.counts["gate"] == 0 and res.counts["activation"] == 1
    assert res.bn_count == 1 and res.verdict == "convertible_with_approximations"
    assert not any(is_tensor_mul(n) for n in res.gm.graph.nodes)
