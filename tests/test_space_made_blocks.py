"""One-block runs grow by a *made* block: a shape-preserving version of their shape-changing block.

A stage of one Bottleneck with a projection shortcut, EfficientNet-B0's ``features.1``/``features.7``,
MobileNetV3-Small's ``features.1``: each is a depth site now, grows by copies of a stride-1,
input = output version of its block (its own class; the projection shortcut replaced by Identity,
the skip flag set as the constructor would) and shrinks back to the one block. Tested like the
other edit kinds: build, forward/backward in train and eval, re-trace (derived topology equals a
fresh analysis), VCNN score, exact params, export round trip.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import zenfx
from zenfx.genome import Edit, Genome

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _facts(t):
    return ([(x.path, x.kind, x.out_group, x.in_parts, x.group_width, x.norm_groups, x.spatial) for x in t.layers],
            {g: (m["flags"], m["step"], bool(m["reasons"])) for g, m in t.groups.items()},
            list(t.kernels), [(b["path"], b["container"], b["start"], b["count"], b.get("make")) for b in t.blocks])


# (seed, resolution, the one-block site, a path inside the first made block, its class)
FAMILIES = [
    ("zoo:cifar_resnet_bottleneck", 32, "layer2", "layer2.1", "Bottleneck"),
    ("zoo:cifar_resnet_basic", 32, "layer3", "layer3.1", "BasicBlock"),
    ("torchvision:efficientnet_b0", 64, "features.1", "features.1.1", "MBConv"),
    ("torchvision:efficientnet_b0", 64, "features.7", "features.7.1", "MBConv"),
    ("torchvision:mobilenet_v3_small", 64, "features.1", "features.2", "InvertedResidual"),
    ("torchvision:mobilenet_v2", 32, "features.17", "features.18", "InvertedResidual"),
    ("torchvision:regnet_x_400mf", 32, "trunk_output.block1", "trunk_output.block1.block1-1", "ResBottleneckBlock"),
    ("timm:efficientnet_b0", 64, "blocks.0", "blocks.0.1", "DepthwiseSeparableConv"),
    ("timm:mobilenetv3_small_100", 64, "blocks.5", "blocks.5.1", "ConvBnAct"),  # 96 -> 576, has_skip
]
FAST = {"zoo:cifar_resnet_bottleneck", "torchvision:efficientnet_b0", "torchvision:mobilenet_v3_small"}


def _cases():
    for f in FAMILIES:
        yield f if f[0] in FAST else pytest.param(*f, marks=pytest.mark.slow)


@pytest.mark.parametrize("spec, res, site, made, cls", list(_cases()))
def test_a_one_block_run_grows_by_a_made_block_and_shrinks_back(spec, res, site, made, cls):
    from zenfx.genome import build_with_topology
    from zenfx.space import analyse

    size = (3, res, res)
    seed = Genome(spec, {}, size)
    sp = zenfx.space(seed)
    b = sp.block(site)
    assert b is not None and b.free and (b.count, b.min) == (1, 1), sp.blocks
    g = seed.child(Edit("depth", site, 3))
    model, topo = build_with_topology(g)
    block = model.get_submodule(made)
    assert type(block).__name__ == cls  # the block's own class
    assert all(m.stride == (1, 1) for m in block.modules() if isinstance(m, nn.Conv2d))
    # the made blocks are fresh (re-initialised) and the same genome builds the same weights
    state = {k: v.clone() for k, v in model.state_dict().items()}
    again = zenfx.build(g).state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    # forward/backward in train and eval
    model.train()
    y = model(torch.randn(2, *size))
    y.sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, *size)).shape == y.shape
    # exact params on meta, the topology a re-trace finds, and a MACs figure from it
    meta, meta_topo = build_with_topology(g, "meta")
    assert _params(meta) == _params(model)
    assert _facts(meta_topo) == _facts(analyse(meta, size))
    assert zenfx.structure_key(g) == zenfx.structure_key(model)
    # the grown run is an ordinary run now: a width edit on its stage reaches the made blocks
    sp3 = zenfx.space(g)
    assert sp3.block(site).count == 3 and sp3.block(site).min == 1
    # VCNN: the grown network converts and scores
    v = zenfx.score(model, "zen", input_size=size, batch_size=4).value
    assert v == v and abs(v) != float("inf")
    # and back to the one block: the seed's own structure and parameters
    back = g.child(Edit("depth", site, 1))
    assert zenfx.structure_key(back) == zenfx.structure_key(seed)
    assert _params(zenfx.build(back)) == _params(zenfx.build(seed))


def test_a_made_bottleneck_is_what_the_constructor_builds():
    """Growing ``layer2`` of the one-block CIFAR Bottleneck seed gives exactly the network the
    seed's constructor builds with two blocks in layer2: every parameter's shape, the count, the
    structure key."""
    g = Genome("zoo:cifar_resnet_bottleneck", {}, (3, 32, 32), 0, [Edit("depth", "layer2", 2)])
    grown = zenfx.build(g)
    ref = zenfx.build(Genome("zoo:cifar_resnet_bottleneck", {"layers": [1, 2, 1, 1]}, (3, 32, 32)))
    assert {k: v.shape for k, v in grown.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert grown.layer2[1].downsample is None  # as the constructor leaves it (downsample=None)
    assert zenfx.structure_key(grown) == zenfx.structure_key(ref) and _params(grown) == _params(ref)


def test_made_blocks_follow_width_edits_and_derive_like_a_retrace():
    """Random depth + width edits on the one-block seed (made blocks, copies, removals, renamed
    groups) derive the topology a fresh analysis finds, and build to the meta figures."""
    from zenfx.genome import build_with_topology
    from zenfx.space import analyse

    seed = Genome("zoo:cifar_resnet_bottleneck", {}, (3, 32, 32))
    for i in range(4):
        g = zenfx.mutate(seed, random.Random(i), edits=6, kinds=("depth", "width"))
        model, derived = build_with_topology(g, "meta")
        assert _facts(derived) == _facts(analyse(model, g.input_size)), [str(e) for e in g.edits]
        real = zenfx.build(g)
        assert _params(real) == _params(model)
        real.train()
        real(torch.randn(2, 3, 32, 32)).sum().backward()


@pytest.mark.parametrize("spec", ["torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
                                  pytest.param("timm:efficientnet_b0", marks=pytest.mark.slow),
                                  pytest.param("torchvision:regnet_x_400mf", marks=pytest.mark.slow)])
def test_shrinking_a_run_to_one_and_regrowing_derives_like_a_retrace(spec):
    from zenfx.genome import build_with_topology
    from zenfx.space import analyse

    seed = Genome(spec, {}, (3, 32, 32))
    sp = zenfx.space(seed)
    runs = [b for b in sp.blocks if b.count >= 2 and b.min == 1 and b.free][::-1][:2]  # later runs first:
    assert runs  # an edit renumbers the flat containers' later children only
    edits = [e for b in runs for e in (Edit("depth", b.path, 1), Edit("depth", b.path, 3))]
    g = seed.with_edits(edits)
    model, derived = build_with_topology(g, "meta")
    assert _facts(derived) == _facts(analyse(model, g.input_size))


def test_made_blocks_export_and_round_trip(tmp_path):
    from test_export_roundtrip import _assert_round_trip, export_cases

    cases = [
        ("bottleneck", Genome("zoo:cifar_resnet_bottleneck", {}, (3, 32, 32), 0,
                              [Edit("depth", "layer1", 3), Edit("depth", "layer4", 2)]), {}, 32),
        ("effnet", Genome("torchvision:efficientnet_b0", {}, (3, 32, 32), 0,
                          [Edit("depth", "features.1", 2), Edit("depth", "features.7", 3)]), {}, 32),
        ("mnv3", Genome("torchvision:mobilenet_v3_small", {}, (3, 32, 32), 0, [Edit("depth", "features.1", 2)]),
         {}, 32),
    ]
    before = torch.get_num_threads()
    try:
        info = export_cases(tmp_path, cases)
    finally:
        torch.set_num_threads(before)
    for case in info.values():
        _assert_round_trip(case)
