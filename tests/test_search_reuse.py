"""Graph reuse never changes a result (issue 22 item 1): a search reuses a topology's traced and
converted graphs with each candidate's layers swapped in (``candidate.Template``). Layers and
tensors that the VCNN conversion *made* (a LayerNorm or GroupNorm made BatchNorm, timm's functional
batch_norm made a module) must take the candidate's width, and anything that cannot be proven the
same must fall back to a fresh trace + convert. Property: on random genomes of families with every
kind of conversion change, the reused path gives the fresh path's score and figures exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_helpers import family

NETS = Path(__file__).resolve().parent / "sweep_nets.py"


def _compare(spec: str, size: int, *, seed: int, n: int) -> tuple[object, list]:
    from zenfx.genome import Genome
    from zenfx.search.candidate import EvalSettings, evaluate, init_worker

    g0 = Genome(seed=spec, kwargs={}, input_size=(3, size, size))
    st = EvalSettings(proxy="zen", batch_size=4, budgets={"params": 10**9, "depth": 1000}, seed_genome=g0.to_dict())
    fast, full = init_worker(st), init_worker(st)
    full.fast = False
    outs = []
    for g in family(g0, seed=seed, size=n):
        a, b = evaluate(fast, g.to_dict()), evaluate(full, g.to_dict())
        assert a["status"] == b["status"] == "scored", (g.edits, a.get("error"), b.get("error"))
        assert (a["score"], a["figures"]) == (b["score"], b["figures"]), g.edits
        outs.append(a)
    return fast, outs


@pytest.mark.parametrize("net,size", [("gelu_ln", 32), ("mixed", 32), ("chan_ln", 32), ("timm_ln", 32)])
def test_reuse_gives_the_fresh_result_on_random_genomes(one_thread, net, size):
    """gelu_ln: channels-last LayerNorm made BatchNorm, GroupNorm made BatchNorm, GELU made ReLU;
    mixed: timm BatchNormAct2d, Hardswish, SE gate stripped, Dropout/Identity removed, layer scale;
    chan_ln / timm_ln: the LayerNorm2d pattern at channels != spatial width (item 1b)."""
    fast, outs = _compare(f"{NETS}:{net}", size, seed=2, n=10)
    assert fast.templates
    assert any("reuse" in o["timings"] for o in outs)  # reuse is still used where it is safe


def test_a_template_the_conversion_rewrote_unprovably_is_never_reused():
    """A conversion-made layer the template cannot rebuild marks the topology unsafe: every
    candidate of it is traced and converted afresh."""
    from torch import nn

    from zenfx.search.candidate import make_template

    class Made(nn.Module):  # stands in for a converted graph holding a layer the conversion made
        def __init__(self) -> None:
            super().__init__()
            self.odd = nn.Conv2d(3, 3, 1)

    import torch.fx as fx

    gm = fx.symbolic_trace(Made().odd)
    t = make_template(gm, gm, nn.Sequential(), 1)
    assert t.unsafe is not None and "made or changed" in t.unsafe


@pytest.mark.parametrize("net", ["chan_ln", "timm_ln"])
def test_a_norm_subclass_with_its_own_forward_is_analysed_by_running_it(cli, net):
    """item 1b: a channels-last LayerNorm2d at channels (24) != spatial width (16) is a member of its
    conv's channel group, not a shape error; a width edit of that group builds and runs."""
    import torch

    import zenfx
    from zenfx.genome import Edit, Genome

    spec = f"{NETS}:{net}"
    code, _, stderr = cli("space", spec, "-r", "32")
    assert code == 0, stderr
    sp = zenfx.space(spec, input_size=(3, 32, 32))
    stem = next(g for g in sp.groups if g.id == "stem.0")
    assert stem.free and stem.channels == 24
    m = zenfx.build(Genome(spec, {}, (3, 32, 32), edits=[Edit("width", "stem.0", 32)]))
    assert tuple(m.stem[1].normalized_shape) == (32,)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 40, 8, 8)


def test_normalised_dim_is_found_by_running_the_layer():
    import torch
    from torch import nn

    from zenfx.space.channels import normalised_dim, own_forward

    class ChannelsLast(nn.LayerNorm):
        def forward(self, x):
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class Odd(nn.LayerNorm):  # normalises dim 2: neither channels nor last
        def forward(self, x):
            return super().forward(x.transpose(2, 3)).transpose(2, 3)

    with torch.device("meta"):
        cl, odd, plain = ChannelsLast(16), Odd(16), nn.LayerNorm(16)
    assert own_forward(cl) and own_forward(odd) and not own_forward(plain)
    assert normalised_dim(cl, (2, 16, 16, 16)) == 1  # channels equal to the width: still told apart
    assert normalised_dim(plain, (2, 16, 16, 16)) == 3
    assert normalised_dim(odd, (2, 16, 16, 16)) is None
