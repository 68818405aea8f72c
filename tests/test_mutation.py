"""build / mutate / shrink / structure_key: replay, validity by construction, clear errors."""

from __future__ import annotations

import random

import pytest
import torch

import zenfx
from zenfx.errors import UsageError
from zenfx.genome import Edit, Genome

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = [("torchvision:resnet18", (3, 32, 32)),
         pytest.param("torchvision:mobilenet_v2", (3, 32, 32), marks=pytest.mark.slow),
         ("zoo:cifar_resnet20", (3, 32, 32)), ("examples/my_backbone.py:build", (3, 32, 32))]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("spec, size", SEEDS)
def test_width_mutants_build_run_and_replay(spec, size):
    g0 = Genome(spec, {}, size)
    rng = random.Random(1)
    for _ in range(2):
        g = zenfx.mutate(g0, rng, edits=3, kinds=("width",))
        assert [e.kind for e in g.edits] == ["width"] * 3 and g.seed_key
        m = zenfx.build(g)
        state = {k: v.clone() for k, v in m.state_dict().items()}
        m.train()
        y = m(torch.randn(2, *size))
        y.sum().backward()
        m.eval()
        with torch.no_grad():
            assert m(torch.randn(2, *size)).shape == y.shape
        again = zenfx.build(g).state_dict()
        assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
        meta = zenfx.build(g, device="meta")
        assert _params(meta) == _params(m)
        assert zenfx.structure_key(g) == zenfx.structure_key(m)


def test_structure_key_ignores_edit_order_and_init_seed():
    a = Genome("torchvision:resnet18", {}, (3, 32, 32), 0,
               [Edit("width", "layer1.0.conv1", 32), Edit("width", "layer3.0.conv2", 128)])
    b = Genome("torchvision:resnet18", {}, (3, 32, 32), 5,
               [Edit("width", "layer3.0.conv2", 128), Edit("width", "layer1.0.conv1", 32)])
    assert zenfx.structure_key(a) == zenfx.structure_key(b)
    assert zenfx.structure_key(a) != zenfx.structure_key(a.with_edits(a.edits[:1]))


def test_width_edit_reinitialises_like_torchvision():
    g = Genome("torchvision:resnet18", {}, (3, 32, 32), 0, [Edit("width", "layer1.0.conv1", 128)])
    m = zenfx.build(g)
    assert m.layer1[0].conv1.out_channels == 128 and m.layer1[0].bn1.num_features == 128
    assert m.layer1[0].conv2.in_channels == 128
    w = m.layer1[0].conv1.weight
    assert abs(w.std().item() - (2 / (128 * 9)) ** 0.5) < 0.01  # kaiming_normal, fan_out
    assert torch.equal(m.layer1[0].bn1.weight, torch.ones(128))


def test_shrink_halves_every_free_group():
    g0 = Genome("zoo:cifar_resnet20", {}, (3, 32, 32))
    small = zenfx.shrink(g0, 0.5)
    full, half = zenfx.build(g0), zenfx.build(small)
    assert 0.2 < _params(half) / _params(full) < 0.35
    shallow = zenfx.shrink(g0, 0.5, depth=True)
    assert [e.kind for e in shallow.edits][:3] == ["depth"] * 3
    assert _params(zenfx.build(shallow)) < _params(half)


@pytest.mark.parametrize("edit, message", [
    (Edit("width", "layer9.conv", 32), "has no channel group 'layer9.conv'"),
    (Edit("width", "fc", 32), "is frozen: model output"),
    (Edit("width", "input", 8), "is frozen: image input"),
    (Edit("width", "layer1.0.conv1", 30), "multiple of 8"),
    (Edit("kernel", "layer1.0.downsample.0", 3), "no kernel site"),
    (Edit("depth", "layer1", 40), "must be in [1, 4]"),
])
def test_bad_edits_are_one_line_usage_errors(edit, message):
    g = Genome("torchvision:resnet18", {}, (3, 32, 32), 0, [edit])
    with pytest.raises(UsageError) as exc:
        zenfx.build(g)
    assert message in str(exc.value) and str(exc.value).startswith("edit 1 (")
    assert exc.value.exit_code == 2


def test_genome_of_another_seed_is_refused(tmp_path):
    g = zenfx.mutate(Genome("zoo:cifar_resnet20", {}, (3, 32, 32)), random.Random(0), kinds="width")
    other = Genome("zoo:cifar_resnet32", {}, (3, 32, 32), 0, list(g.edits), seed_key=g.seed_key)
    with pytest.raises(UsageError, match="not the model this genome was written for"):
        zenfx.build(other)


def test_genome_file_is_a_model_spec(tmp_path):
    g = zenfx.mutate(Genome("zoo:cifar_resnet20", {}, (3, 32, 32)), random.Random(2), edits=2, kinds="width")
    path = g.save(tmp_path / "g.json")
    loaded = zenfx.resolve_model(str(path))
    assert loaded.source == "genome" and loaded.default_input_size == (3, 32, 32)
    assert _params(loaded.module) == _params(zenfx.build(g))


@pytest.mark.parametrize("spec, size", [("zoo:cifar_resnet_basic", (3, 32, 32)),
                                        ("torchvision:mobilenet_v2", (3, 64, 64)),
                                        pytest.param("timm:efficientnet_b0", (3, 64, 64), marks=pytest.mark.slow)])
def test_a_derived_state_equals_a_replay(spec, size, monkeypatch):
    """mutate() derives the space after a width or kernel edit from its parent's remembered space
    instead of replaying the genome; along random chains of edits (depth edits included, which
    replay), every remembered space equals a replay's: values, limits, roles and ratios, freedom."""
    import random

    import zenfx.genome.mutation as mutation

    def view(sp):
        return ([g.to_dict() for g in sp.groups], [k.to_dict() for k in sp.kernels],
                [(b.path, b.count, b.min, b.max, b.free) for b in sp.blocks])

    mutation.forget_genomes()
    made: list[bool] = []
    real = mutation._derived

    def spy(*args):
        out = real(*args)
        made.append(out is not None)
        return out

    monkeypatch.setattr(mutation, "_derived", spy)
    rng = random.Random(7)
    g0 = Genome(seed=spec, input_size=size)
    pool, derived = [g0], 0
    for _ in range(24):
        child = mutation.mutate(rng.choice(pool), rng, rng.choice((1, 2)))
        pool.append(child)
    for g in pool:
        g = mutation.with_seed_key(g)
        for n in range(len(g.edits) + 1):
            prefix = g.with_edits(list(g.edits[:n]))
            prefix.seed_key = g.seed_key
            remembered = mutation._STATES.get(mutation._state_key(prefix, prefix.edits, True, True))
            if remembered is None:
                continue
            derived += 1
            assert view(remembered[0]) == view(mutation.current_state(prefix)), (spec, prefix.edits)
    assert derived >= 24 and sum(made) >= 10  # most width/kernel children were derived, not replayed
