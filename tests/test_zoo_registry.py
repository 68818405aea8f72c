"""The zoo registry and its CIFAR seeds: ``zoo:NAME`` specs through the API and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

import zenfx
from zenfx.errors import UnknownModelError, UsageError
from zenfx.zoo.registry import KINDS, get_entry, list_entries


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_seeds_and_family_with_kinds():
    names = [e.name for e in list_entries()]
    assert {"cifar_resnet_basic", "cifar_resnet_bottleneck", "cifar_resnet20"} <= set(names)
    assert len(names) == len(set(names))
    assert all(e.kind in KINDS for e in list_entries())
    assert [e.name for e in list_entries("cifar_resnet_b*")] == ["cifar_resnet_basic", "cifar_resnet_bottleneck"]
    assert {e.name for e in list_entries(kind="seed")} >= {"cifar_resnet_basic", "cifar_resnet_bottleneck"}
    assert get_entry("zoo:cifar_resnet20").kind == "family"
    with pytest.raises(UsageError):
        list_entries(kind="nope")


def test_unknown_entry_suggests_close_names():
    with pytest.raises(UnknownModelError, match="unknown zoo entry 'cifar_resnet_basc'") as exc:
        zenfx.load_model("zoo:cifar_resnet_basc")
    assert "zoo:cifar_resnet_basic" in str(exc.value)


@pytest.mark.parametrize("name,block", [("cifar_resnet_basic", BasicBlock), ("cifar_resnet_bottleneck", Bottleneck)])
def test_seeds_are_torchvision_blocks_cifar_stem_four_single_block_stages(name, block):
    lm = zenfx.resolve_model(f"zoo:{name}")
    m = lm.module
    assert lm.source == "zoo" and lm.default_input_size == (3, 32, 32) and lm.spec == f"zoo:{name}"
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    stages = [m.layer1, m.layer2, m.layer3, m.layer4]
    assert all(len(s) == 1 and type(s[0]) is block for s in stages)
    assert m.fc.out_features == 10
    y = m(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10)
    assert zenfx.load_model(f"zoo:{name}", num_classes=100).fc.out_features == 100


def test_seed_parameter_counts_by_hand():
    # stem 3*8*9 + BN 16; BasicBlock(ci, co, s): 9*ci*co + 9*co*co + 4co (+ ci*co + 2co projection)
    def basic(ci, co):
        return 9 * ci * co + 9 * co * co + 4 * co + ci * co + 2 * co

    want = 3 * 8 * 9 + 16 + basic(8, 16) + basic(16, 32) + basic(32, 64) + basic(64, 64) + 64 * 10 + 10
    assert n_params(zenfx.load_model("zoo:cifar_resnet_basic")) == want


def test_cifar_resnet20_layout_and_params():
    m = zenfx.load_model("zoo:cifar_resnet20")
    assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [3, 3, 3] and not hasattr(m, "layer4")
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d) and x.kernel_size == (3, 3)]
    assert len(convs) == 19  # 19 3x3 convs + the fc = 20 weighted layers
    # 0.27M in the paper (option A, zero-padding shortcut); +2,752 for the two 1x1 projections here
    assert n_params(m) == 272_474


def test_bad_constructor_arguments_are_usage_errors():
    with pytest.raises(UsageError):
        zenfx.load_model("zoo:cifar_resnet_basic", nonsense=3)
    with pytest.raises(UsageError, match="6n\\+2"):
        zenfx.load_model("zoo:cifar_resnet20", depth=21)


SMALL = ["cifar_resnet_basic", "cifar_resnet_bottleneck", "cifar_resnet20", "nats_sss",
         pytest.param("nb201", marks=pytest.mark.slow)]  # 15 cells: the slowest conversion of the lot


@pytest.mark.parametrize("name", SMALL)
def test_small_entries_build_trace_and_convert(name, one_thread):
    res = zenfx.convert_model(f"zoo:{name}")
    assert res.verdict == "convertible"
    assert res.gm(torch.randn(1, 3, 32, 32)).dim() == 4  # pre-GAP map


def test_meta_build_of_a_zoo_entry():
    lm = zenfx.resolve_model("zoo:cifar_resnet_bottleneck", device="meta")
    assert next(lm.module.parameters()).is_meta


def test_cli_score_zoo_seed(cli, one_thread):
    code, out, _ = cli("score", "zoo:cifar_resnet_basic", "-r", "32", "--repeat", "1", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["source"] == "zoo" and data["input_size"] == [3, 32, 32]
    assert data["scores"]["zen"]["value"] > 0


def test_cli_unknown_zoo_entry_exits_2(cli):
    code, out, err = cli("inspect", "zoo:no_such_net")
    assert code == 2
    assert "unknown zoo entry" in out + err
