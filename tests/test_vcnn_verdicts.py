"""Expected verdicts on real zoo models, built on the meta device (no memory, no compute)."""

from __future__ import annotations

import pytest

from zenfx.graph import is_non_relu_activation, is_residual_add, is_tensor_mul
from zenfx.pipeline import load_and_trace, to_vcnn

CONVERTIBLE_FAST = ["torchvision:resnet18", "torchvision:mobilenet_v3_large", "torchvision:efficientnet_b0"]
CONVERTIBLE_SLOW = ["torchvision:resnet50", "torchvision:resnext50_32x4d", "torchvision:wide_resnet50_2",
                    "torchvision:vgg16_bn", "torchvision:mobilenet_v2", "torchvision:regnet_y_400mf",
                    "torchvision:mnasnet1_0", "timm:resnet50", "timm:efficientnet_b0", "timm:mobilenetv3_large_100"]
CONCAT_FAST = ["torchvision:densenet121"]
CONCAT_SLOW = ["torchvision:googlenet", "torchvision:inception_v3"]


def convert(spec: str):
    tm = load_and_trace(spec, device="meta")
    return to_vcnn(tm, strict=False, name=tm.name)


def _assert_vanilla(res) -> None:
    gm = res.gm
    gm.graph.lint()
    assert not any(is_residual_add(n) for n in gm.graph.nodes)
    assert not any(is_tensor_mul(n) for n in gm.graph.nodes)
    assert not any(is_non_relu_activation(gm, n) for n in gm.graph.nodes)
    assert len(res.output_shape) == 4  # the pre-GAP feature map


@pytest.mark.parametrize("spec", CONVERTIBLE_FAST + [pytest.param(s, marks=pytest.mark.slow) for s in CONVERTIBLE_SLOW])
def test_convertible(spec):
    res = convert(spec)
    assert res.verdict == "convertible", res.reasons + res.approximations
    _assert_vanilla(res)
    assert res.bn_count > 0 and res.conv_count > 0


@pytest.mark.parametrize("spec", CONCAT_FAST + [pytest.param(s, marks=pytest.mark.slow) for s in CONCAT_SLOW])
def test_not_convertible_concat(spec):
    res = convert(spec)
    assert res.verdict == "not_convertible"
    assert any(r.startswith("branches merged by concat") for r in res.reasons), res.reasons


def test_vit_is_not_convertible():
    res = convert("torchvision:vit_b_16")
    assert res.verdict == "not_convertible"
    assert any(r.startswith("no convolution left") for r in res.reasons), res.reasons


def test_mobilenet_v3_details():
    res = convert("torchvision:mobilenet_v3_large")
    assert res.counts["gate"] == 8  # hardsigmoid SE gates
    assert res.counts["residual"] == 10
    assert res.output_shape == (1, 960, 7, 7)


@pytest.mark.slow
def test_convnext_is_convertible_with_approximations():
    res = convert("torchvision:convnext_tiny")
    assert res.verdict == "convertible_with_approximations"
    assert res.counts["norm_replaced"] > 0
    _assert_vanilla(res)
