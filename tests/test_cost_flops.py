"""MAC counting: torchvision's published figures, the attention traps, fvcore cross-check, bad sizes."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from zenfx.cost.flops import count, count_macs, macs_by_depth
from zenfx.errors import ShapeError


def _meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return tvm.get_model(name, weights=None)


def test_conv_linear_hand_count() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    # conv: 8 out ch * 4*4 positions * 3*3*3 taps; linear: 128*10
    assert count_macs(net, (3, 4, 4)) == 8 * 16 * 27 + 128 * 10
    assert count_macs(net, (3, 4, 4), batch_size=3) == 3 * (8 * 16 * 27 + 128 * 10)


def test_meta_and_real_weights_agree() -> None:
    real = tvm.resnet18(weights=None)
    assert count_macs(real, (3, 224, 224)) == count_macs(_meta("resnet18"), (3, 224, 224))


@pytest.mark.parametrize("real", [False, True])
def test_vit_attention_counted_under_no_grad(real: bool) -> None:
    """The MHA fast path and the CPU SDPA kernel must not hide attention MACs."""
    model = tvm.vit_b_16(weights=None) if real else _meta("vit_b_16")
    with torch.no_grad():
        macs = count_macs(model, (3, 224, 224))
    published = tvm.ViT_B_16_Weights.DEFAULT.meta["_ops"] * 1e9
    assert abs(macs - published) / published < 0.005
    # attention alone: 12 layers * 12 heads * 197*197 * (64+64)
    attn = 12 * 12 * 197 * 197 * 128
    assert macs > published - attn * 0.5


def test_mha_fastpath_restored() -> None:
    before = torch.backends.mha.get_fastpath_enabled()
    count_macs(tvm.vit_b_16(weights=None, image_size=32), (3, 32, 32))
    assert torch.backends.mha.get_fastpath_enabled() == before


def test_sdpa_functional_counted() -> None:
    class Attn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B, H, L, E
            return nn.functional.scaled_dot_product_attention(x, x, x)

    b, h, seq, e = 2, 3, 7, 5
    # real CPU weights -> FakeTensorMode -> _scaled_dot_product_flash_attention_for_cpu
    assert count_macs(Attn(), (h, seq, e), batch_size=b) == b * h * seq * seq * (e + e)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "densenet121"])
def test_fvcore_cross_check_within_few_percent(name: str) -> None:
    model = _meta(name)
    ours = count(model, (3, 224, 224), counter="torch").total
    theirs = count(model, (3, 224, 224), counter="fvcore").total
    # fvcore also counts batch norm / pooling / upsampling: a few percent above on CNNs.
    assert abs(theirs - ours) / ours < 0.05


def test_by_module_depth() -> None:
    res = count(_meta("resnet18"), (3, 224, 224))
    top = macs_by_depth(res.by_module, 1)
    assert {"conv1", "layer1", "layer4", "fc"} <= set(top)
    assert sum(top.values()) == res.total
    assert res.flops == 2 * res.total


def test_bad_resolution_names_layer() -> None:
    with pytest.raises(ShapeError, match=r"features\.2.*MaxPool2d"):
        count_macs(tvm.alexnet(weights=None), (3, 8, 8))
    with pytest.raises(ShapeError, match="MaxPool2d"):
        count_macs(_meta("alexnet"), (3, 8, 8))


def test_transformer_encoder_layer_fastpath_under_no_grad() -> None:
    """nn.TransformerEncoderLayer's fused eval fast path must not hide its MACs."""
    d, heads, ff, length = 16, 2, 32, 5
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True, dropout=0.0).eval()
    expected = (length * d * 3 * d  # in_proj
                + heads * length * length * (d // heads) * 2  # QK^T and AV
                + length * d * d  # out_proj
                + length * d * ff + length * ff * d)  # feed-forward
    with torch.no_grad():
        assert count_macs(layer, (length, d)) == expected


def test_by_module_rolls_up_on_graph_modules() -> None:
    """fx GraphModules call only leaf modules: containers must still get their children's MACs."""
    from zenfx import trace

    model = _meta("resnet18")
    eager = count(model, (3, 64, 64)).by_module
    graph = count(trace(model, (3, 64, 64)), (3, 64, 64)).by_module
    for key in ("layer1", "layer1.0", "layer4", "layer4.1.conv2", "fc", ""):
        assert graph[key] == eager[key] > 0


def test_timm_vit_cpu_sdpa_kernel_counted() -> None:
    """timm's fused attention on (fake) CPU tensors hits the CPU flash kernel: it must be counted."""
    timm = pytest.importorskip("timm")
    real = timm.create_model("vit_tiny_patch16_224")
    with torch.device("meta"):
        meta = timm.create_model("vit_tiny_patch16_224")
    res = count(real, (3, 224, 224))
    attn = 12 * 3 * 197 * 197 * (64 + 64)  # layers * heads * L * S * (E + Ev)
    assert res.by_op.get("_scaled_dot_product_flash_attention_for_cpu") == attn
    assert res.total == count_macs(meta, (3, 224, 224))
