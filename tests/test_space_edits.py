"""Kernel and depth edits, stale metadata, the probe, the disk cache, and frozen-with-reason families."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import zenfx
from zenfx.genome import Edit, Genome

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def _run(m, size):
    m.train()
    y = m(torch.randn(2, *size))
    y.sum().backward()
    m.eval()
    with torch.no_grad():
        return m(torch.randn(2, *size)).shape


class SameNet(nn.Module):
    """timm's dynamic-'same' conv and its BN-with-activation, in a user's own net."""

    def __init__(self) -> None:
        from timm.layers import BatchNormAct2d, Conv2dSame

        super().__init__()
        self.stem = Conv2dSame(3, 16, 3, stride=2, bias=False)
        self.bn = BatchNormAct2d(16, act_layer=nn.SiLU)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.bn2 = BatchNormAct2d(16, act_layer=nn.SiLU)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.bn(self.stem(x))
        x = x + self.bn2(self.dw(x))
        return self.fc(x.mean((2, 3)))


def build_same_net() -> nn.Module:
    return SameNet()


def test_kernel_and_width_edits_keep_timm_layers_themselves():
    size = (3, 33, 33)  # odd: dynamic 'same' padding is asymmetric here
    g = Genome(f"{__file__}:build_same_net", {}, size, 0,
               [Edit("kernel", "stem", 7), Edit("kernel", "dw", 5), Edit("width", "stem", 24)])
    m = zenfx.build(g)
    assert type(m.stem).__name__ == "Conv2dSame" and m.stem.kernel_size == (7, 7) and m.stem.padding == (0, 0)
    assert m.dw.kernel_size == (5, 5) and m.dw.padding == (2, 2) and m.dw.groups == 24
    assert type(m.bn).__name__ == "BatchNormAct2d" and isinstance(m.bn.act, nn.SiLU) and m.bn.num_features == 24
    assert _run(m, size) == (2, 10)


@pytest.mark.slow
def test_kernel_edits_keep_shapes_on_dynamic_same_padding_and_depthwise():
    size = (3, 64, 64)
    g0 = Genome("timm:tf_efficientnet_b0", {}, size)
    sp = zenfx.space(g0)
    meta = zenfx.build(g0, device="meta")
    same = [k.path for k in sp.kernels if type(meta.get_submodule(k.path)).__name__ == "Conv2dSame"]
    assert same, "tf_ models pad dynamically with Conv2dSame on strided convs"
    dw = "blocks.1.1.conv_dw"  # stride 1: static padding
    g = g0.child(Edit("kernel", same[0], 7), Edit("kernel", dw, 5))
    m = zenfx.build(g)
    conv = m.get_submodule(same[0])
    assert type(conv).__name__ == "Conv2dSame" and conv.kernel_size == (7, 7) and conv.padding == (0, 0)
    assert m.get_submodule(dw).kernel_size == (5, 5) and m.get_submodule(dw).padding == (2, 2)
    assert _run(m, size) == (2, 1000)


def test_depth_edits_renumber_and_replay_in_order():
    size = (3, 32, 32)
    g = Genome("torchvision:mobilenet_v2", {}, size, 0, [
        Edit("depth", "features.4", 5),  # features.7.. shift by two
        Edit("depth", "features.9", 2),  # the third stage's run now starts at features.9
        Edit("width", "features.9.conv.0.0", 96),
    ])
    m = zenfx.build(g, probe=False)
    assert len(m.features) == 19 + 2 - 2
    assert m.features[9].conv[0][0].out_channels == 96
    assert _run(m, size) == (2, 1000)
    sp = zenfx.space(g, probe=False)
    assert [(b.path, b.count) for b in sp.blocks][2:4] == [("features.4", 5), ("features.9", 2)]
    with pytest.raises(zenfx.UsageError, match="no block run 'features.7'"):
        zenfx.build(g.child(Edit("depth", "features.7", 3)), probe=False)


def test_added_blocks_are_fresh_and_deterministic():
    g = Genome("zoo:cifar_resnet20", {}, (3, 32, 32), 3, [Edit("depth", "layer2", 5)])
    a, b = zenfx.build(g), zenfx.build(g)
    assert len(a.layer2) == 5
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.layer2[3].conv1.weight, a.layer2[2].conv1.weight)  # re-initialised, not cloned


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn(self.conv(x))


class LoopNet(nn.Module):
    """forward loops `for i in range(self.n)`: a block appended to the list would never run."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.n = nn.Conv2d(3, 16, 3, padding=1), 3
        self.blocks = nn.ModuleList([_Block(16) for _ in range(3)])
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        for i in range(self.n):
            x = self.blocks[i](x)
        return self.fc(x.mean((2, 3)))


def test_fixed_count_loop_freezes_the_container():
    sp = zenfx.space(LoopNet(), input_size=(3, 16, 16))
    (site,) = sp.blocks
    assert not site.free and "never called by forward" in site.reason


def test_stale_metadata_fixed_after_edits():
    g = Genome("timm:efficientnet_b0", {"drop_path_rate": 0.2}, (3, 64, 64), 0,
               [Edit("depth", "blocks.5", 6), Edit("width", "conv_head", 640)])
    m = zenfx.build(g, device="meta", probe=False)
    rates = [d.drop_prob for d in m.modules() if type(d).__name__ == "DropPath"]
    assert len(rates) == 17 and rates == sorted(rates) and abs(rates[-1] - 0.1875) < 1e-9
    # evenly spread
    assert all(abs((b - a) - (rates[1] - rates[0])) < 1e-9 for a, b in zip(rates, rates[1:], strict=False))
    assert m.num_features == 640 and m.head_hidden_size == 640
    assert m.feature_info[-1]["num_chs"] == 320


def test_space_cache_is_used_and_survives_corruption(tmp_path, monkeypatch):
    from zenfx.genome import seeds as mutation

    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "c"))
    mutation._SEED_TOPOS.clear()  # this process may have analysed the seed already (in memory)
    spec = "examples/my_backbone.py:build"
    first = zenfx.space(spec, input_size=(3, 32, 32))
    files = list((tmp_path / "c" / "space").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["topology"]["probe"]["ran"]
    files[0].write_text('{"format": 1, "topology": {"layers": [')  # truncated by a crash
    mutation._SEED_TOPOS.clear()
    again = zenfx.space(spec, input_size=(3, 32, 32))
    assert again.to_dict()["groups"] == first.to_dict()["groups"]
    assert json.loads(files[0].read_text())["format"] == 1  # rewritten whole


def _frozen(sp):
    return {g.id: g.reason for g in sp.groups if not g.free}


def test_shufflenet_split_and_shuffle_frozen():
    sp = zenfx.space("torchvision:shufflenet_v2_x0_5", input_size=(3, 64, 64))
    reasons = " ".join(_frozen(sp).values())
    assert "split/chunk" in reasons and "reshapes channels" in reasons  # chunk, then the shuffle's view


def test_vit_attention_and_convnext_permute_frozen():
    vit = zenfx.space("torchvision:vit_b_16", probe=False)
    reasons = " ".join(r for g in vit.groups if g.reason for r in [g.reason])
    assert "MultiheadAttention" in reasons and "(attention)" in reasons
    assert any(g.free and g.id.endswith("mlp.0") for g in vit.groups)  # MLP hidden widths stay free
    cnx = zenfx.space("torchvision:convnext_tiny", input_size=(3, 64, 64), probe=False)
    assert not any(g.free for g in cnx.groups)
    assert any("permute moves the channel dim" in r for r in _frozen(cnx).values())
    assert [b.path for b in cnx.blocks] == [f"features.{i}" for i in (1, 3, 5, 7)]  # depth stays searchable


def _topology_facts(t):
    return ([(x.path, x.kind, x.out_group, x.in_parts, x.group_width, x.norm_groups, x.spatial) for x in t.layers],
            {g: (m["flags"], m["step"], bool(m["reasons"])) for g, m in t.groups.items()},
            list(t.kernels), [(b["path"], b["container"], b["start"], b["count"]) for b in t.blocks])


def _derived_equals_traced(spec: str, res: int, genomes: int) -> None:
    import random

    from zenfx.genome import build_with_topology
    from zenfx.space import analyse

    seed = Genome(spec, {}, (3, res, res))
    for i in range(genomes):
        g = zenfx.mutate(seed, random.Random(i), edits=4, kinds=("depth", "width"), probe=False)
        model, derived = build_with_topology(g, "meta", probe=False)
        assert _topology_facts(derived) == _topology_facts(analyse(model, g.input_size)), [str(e) for e in g.edits]


@pytest.mark.parametrize("spec", ["zoo:cifar_resnet20", "torchvision:mobilenet_v2"])
def test_depth_edits_derive_the_topology_a_retrace_finds(spec):
    _derived_equals_traced(spec, 32, 3)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["torchvision:resnet50", "torchvision:efficientnet_b0", "timm:efficientnet_b0",
                                  "torchvision:regnet_x_400mf", "timm:mobilenetv3_small_100", "timm:tf_efficientnet_b0",
                                  "torchvision:mobilenet_v3_small", "timm:resnet18", "zoo:cifar_resnet_bottleneck"])
def test_depth_edits_derive_the_topology_a_retrace_finds_every_family(spec):
    _derived_equals_traced(spec, 64, 6)
