"""``zenfx.score`` accepts every form a model takes in zenfx and never re-does upstream work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zenfx
from zenfx.proxies.base import get_proxy
from zenfx.scoring import prepare, with_head

SIZE = (3, 16, 16)


pytestmark = pytest.mark.usefixtures("one_thread")


def plain(depth: int = 3, width: int = 8) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for _ in range(depth):
        layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
    return nn.Sequential(*layers)


def test_every_model_form_gives_the_same_number():
    kw = dict(batch_size=2, repeat=2, seed=1)
    net = plain()
    want = zenfx.score(net, "zen", input_size=SIZE, **kw)["zen"].values
    gm = zenfx.trace(plain(), SIZE)
    assert zenfx.score(gm, "zen", **kw)["zen"].values == want  # input size read from the graph
    tm = zenfx.load_and_trace(plain(), input_size=SIZE)
    assert zenfx.score(tm, "zen", **kw)["zen"].values == want
    prep = prepare(plain(), "zen", input_size=SIZE)
    assert zenfx.score(prep, "zen", **kw)["zen"].values == want


def test_prepared_is_reused_without_retracing():
    prep = prepare(plain(), "zen,phi", input_size=SIZE)
    before = dict(prep.timings)
    gm = prep.graph("vcnn")
    for seed in range(3):
        zenfx.score(prep, "zen", batch_size=2, repeat=1, seed=seed)
    assert prep.timings == before and prep.graph("vcnn") is gm
    # the template itself is never touched by a proxy
    assert all(m.momentum == 0.1 and int(m.num_batches_tracked) == 0 for m in gm.modules()
               if isinstance(m, nn.BatchNorm2d))


def test_kept_device_copy_scores_like_a_fresh_one():
    # A Prepared keeps the materialised network of zen/phi between calls; every weight and BN
    # statistic is re-set each repeat, so a reused copy must give exactly a fresh copy's numbers,
    # whatever ran on it before (other seeds, batch sizes, the carry-over mode).
    kw = dict(batch_size=2, repeat=2, seed=5)
    want = zenfx.score(prepare(plain(), "zen,phi", input_size=SIZE), "zen,phi", **kw)
    prep = prepare(plain(), "zen,phi", input_size=SIZE)
    zenfx.score(prep, "zen,phi", batch_size=3, repeat=3, seed=0)
    zenfx.score(prep, "zen", batch_size=2, repeat=3, seed=1, extra={"zen_reset_bn": False})
    copies = dict(prep.device_copies)
    got = zenfx.score(prep, "zen,phi", **kw)
    assert got["zen"].values == want["zen"].values and got["phi"].values == want["phi"].values
    assert prep.device_copies == copies and len(copies) == 2  # one per proxy, reused
    zenfx.score(prep, "zen", bn_stat="batch", **kw)
    assert zenfx.score(prep, "zen", **kw)["zen"].values == want["zen"].values


def test_caller_model_is_not_modified():
    net = plain()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    zenfx.score(net, "zen,phi,params", input_size=SIZE, batch_size=2, repeat=2)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_spec_string_builds_on_meta_and_params_match(tmp_path):
    f = tmp_path / "nets.py"
    f.write_text("from torch import nn\n"
                 "def build():\n"
                 "    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())\n")
    res = zenfx.score(f"{f}:build", "zen,params", input_size=SIZE, batch_size=2, repeat=1)
    assert res["params"].value == 3 * 8 * 9 + 16
    assert any("meta device" in n for n in res.notes)


def test_vcnn_result_is_accepted():
    pytest.importorskip("zenfx.vcnn")
    from zenfx.pipeline import to_vcnn

    vc = to_vcnn(zenfx.trace(plain(), SIZE))
    a = zenfx.score(vc, "zen", batch_size=2, repeat=1)
    b = zenfx.score(plain(), "zen", input_size=SIZE, batch_size=2, repeat=1)
    assert a.value == b.value


def test_needs_head_proxies_get_logits():
    """A proxy registered with needs_head=True on the VCNN graph receives GAP+Linear logits."""
    from zenfx.proxies.base import REGISTRY, register_proxy

    seen = {}

    @register_proxy("_test_head", graph="vcnn", needs_data=True, needs_head=True, reference="test", summary="test")
    def _probe(net, ctx):
        seen["shape"] = tuple(net(torch.randn(ctx.batch_size, *ctx.input_size)).shape)
        return 1.0

    try:
        zenfx.score(plain(), "_test_head", input_size=SIZE, batch_size=3, repeat=1, num_classes=7)
    finally:
        REGISTRY.pop("_test_head", None)
    assert seen["shape"] == (3, 7)
    assert with_head(zenfx.trace(plain(), SIZE), 5)(torch.randn(2, *SIZE)).shape == (2, 5)


def test_registry_flags():
    assert get_proxy("zen").reinitializes and get_proxy("phi").reinitializes
    assert not get_proxy("params").mutates and get_proxy("params").deterministic_without_seed
    assert get_proxy("flops").graph == "original" and get_proxy("zen").graph == "vcnn"


def test_tensor_the_init_does_not_set_forces_a_real_build(tmp_path):
    """A learnable offset the Gaussian init would not overwrite must keep its constructor value, so
    a meta build (uninitialised memory) is refused and the model rebuilt with real weights. The
    conv itself is traced into a functional call whose weight the init still draws."""
    f = tmp_path / "gain.py"
    f.write_text(
        "import torch\nfrom torch import nn\n"
        "class OffsetConv(nn.Conv2d):\n"
        "    def __init__(self, *a, **k):\n"
        "        super().__init__(*a, **k)\n"
        "        self.offset = nn.Parameter(torch.full((self.out_channels, 1, 1), 0.5))\n"
        "    def forward(self, x):\n"
        "        return super().forward(x) + self.offset\n"
        "def build():\n"
        "    return nn.Sequential(OffsetConv(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())\n")
    res = zenfx.score(f"{f}:build", "zen", input_size=SIZE, batch_size=2, repeat=2)
    assert any("real weights" in n and "offset" in n for n in res.notes), res.notes
    from zenfx.proxies.base import ProxyContext
    from zenfx.proxies.zen import functional_weights, gaussian_init_

    gm = zenfx.scoring.prepare(f"{f}:build", "zen", input_size=SIZE, allow_meta=False).graph("vcnn")
    (w,), _ = functional_weights(gm)
    gaussian_init_(gm, ProxyContext(input_size=SIZE).generator(0))
    assert abs(float(w.detach().std()) - 1.0) < 0.3  # N(0,1), not the constructor's kaiming scale
