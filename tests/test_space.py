"""Channel groups, kernel sites and block runs on real families (fast: small resolutions)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zenfx
from zenfx.genome import Genome

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def _by_id(sp):
    return {g.id: g for g in sp.groups}


def test_resnet18_groups_roles_sites():
    sp = zenfx.space("torchvision:resnet18", input_size=(3, 64, 64))
    g = _by_id(sp)
    # the stem is tied to layer1 through the identity residuals; each later stage is one group
    assert g["conv1"].role == "stage" and g["conv1"].channels == 64
    assert "layer1.1.conv2 (out)" in g["conv1"].members and "layer1.0.bn2" in g["conv1"].members
    stage2 = {"layer2.0.conv2 (out)", "layer2.0.downsample.0 (out)", "layer2.1.conv2 (out)"}
    assert stage2 <= set(g["layer2.0.conv2"].members)
    assert g["layer1.0.conv1"].role == "inner" and g["layer1.0.conv1"].free
    assert not g["input"].free and g["input"].reason == "image input"
    assert not g["fc"].free and "model output" in g["fc"].reason
    assert sum(x.free for x in sp.groups) == 12
    assert [b.path for b in sp.blocks] == ["layer1", "layer2", "layer3", "layer4"]
    # layer1.0 repeats; layer2-4's first blocks change the shape and a stride-1 version can be made of them
    assert all(b.count == 2 for b in sp.blocks) and [b.min for b in sp.blocks] == [1, 1, 1, 1]
    assert len(sp.kernels) == 17 and sp.kernel("conv1").kernel == 7  # 1x1 downsamples are not sites
    assert sp.size_log10() > 10
    assert sp.topology.probe["ran"]


def test_mobilenet_v2_expansion_and_runs():
    sp = zenfx.space("torchvision:mobilenet_v2", input_size=(3, 32, 32), probe=False)
    g = _by_id(sp)
    exp = g["features.2.conv.0.0"]
    assert exp.role == "expansion" and exp.ratio == 6.0 and exp.step == 8
    assert "features.2.conv.1.0 (out)" in exp.members  # the depthwise conv is tied to the expansion
    assert g["features.0.0"].role == "stem"
    assert g["features.18.0"].role == "head"
    # one run per stage inside the flat `features` container, first (shape-changing) block kept; the
    # one-block stages (features.1: 32 -> 16, features.17: 160 -> 320) are runs too, grown by made blocks
    assert [(b.path, b.count) for b in sp.blocks] == [("features.1", 1), ("features.2", 2), ("features.4", 3),
                                                      ("features.7", 4), ("features.11", 3), ("features.14", 3),
                                                      ("features.17", 1)]
    assert all(b.min == 1 for b in sp.blocks)


def test_cifar_resnet_zoo_and_my_backbone():
    sp = zenfx.space("zoo:cifar_resnet20", input_size=(3, 32, 32))
    assert [(b.path, b.count) for b in sp.blocks] == [("layer1", 3), ("layer2", 3), ("layer3", 3)]
    assert _by_id(sp)["conv1"].role == "stage"
    mine = zenfx.space("examples/my_backbone.py:build", input_size=(3, 32, 32))
    g = _by_id(mine)
    assert g["stages.0.se.fc1"].role == "squeeze"
    assert g["stem.0"].role == "stage" and "stages.1.se.fc2 (out)" in g["stem.0"].members  # SE gate tied


class FlatView(nn.Module):
    """A user net that flattens with a literal channel count: view(-1, 64)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv2(torch.relu(self.conv(x))))
        return self.fc(x.view(-1, 64))


def test_literal_view_is_frozen_with_reason():
    sp = zenfx.space(FlatView(), input_size=(3, 16, 16))
    g = _by_id(sp)
    assert not g["conv2"].free and "view(-1, 64)" in g["conv2"].reason
    assert g["conv"].free


def test_genome_space_follows_edits():
    g0 = Genome("torchvision:resnet18", {}, (3, 32, 32))
    g1 = g0.child(zenfx.Edit("width", "layer1.0.conv1", 32), zenfx.Edit("depth", "layer2", 3))
    sp = zenfx.space(g1)
    assert _by_id(sp)["layer1.0.conv1"].channels == 32
    assert sp.block("layer2").count == 3 and "layer2.2.conv1" in _by_id(sp)


class ScaledNet(nn.Module):
    """A learnable per-channel scale read in forward (a get_attr node), like ConvNeXt's layer scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.gamma = nn.Parameter(torch.ones(1, 32, 1, 1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(torch.relu(self.conv(x))) * self.gamma
        return self.fc(x.mean((2, 3)))


def test_parameter_read_in_forward_is_frozen_with_its_name():
    g = _by_id(zenfx.space(ScaledNet(), input_size=(3, 16, 16)))
    assert not g["conv2"].free and "parameter 'gamma' read in forward" in g["conv2"].reason
    assert g["conv"].free


def test_estimated_macs_match_the_counter_on_mutants():
    import random

    from zenfx.genome import build_with_topology
    from zenfx.space import estimate_macs

    for spec in ("zoo:cifar_resnet20", "examples/my_backbone.py:build"):
        seed = Genome(spec, {}, (3, 32, 32))
        for i in range(3):
            g = zenfx.mutate(seed, random.Random(i), edits=3)
            model, topo = build_with_topology(g, "meta")
            assert estimate_macs(model, topo) == zenfx.count_macs(model, g.input_size)
