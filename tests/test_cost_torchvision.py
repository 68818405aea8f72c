"""Reported MACs and params against the figures torchvision publishes in its weights metadata.

``meta["_ops"]`` is labelled GFLOPS but holds GMACs, rounded to three decimals; ``meta["num_params"]``
is exact. Each weights entry is compared at its own eval crop (``transforms().crop_size``: 299 for
inception_v3, up to 600 for efficientnet_b7, 518 for the SWAG ViT-H). Models are built with empty
(meta) weights, so the whole zoo costs seconds and no memory; nothing is downloaded.

Tolerance: 0.5% of the published figure, or half a unit of its last published digit (0.0005 GMACs)
when that is larger -- ``mobilenet_v3_small`` publishes 0.057 for 0.0566 GMACs, a 0.86% rounding gap.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torchvision.models as tvm

from zenfx.cost.flops import count_macs
from zenfx.cost.params import count_params
from zenfx.loading import empty_weights

FAST = ["resnet50", "mobilenet_v3_large", "vit_b_16", "efficientnet_b0", "regnet_y_400mf", "inception_v3",
        "swin_t", "convnext_tiny"]


def _cases(names: list[str]) -> list[Any]:
    out = []
    for name in names:
        for w in tvm.get_model_weights(name):
            out.append(pytest.param(name, w, id=f"{name}-{w.name}"))
    return out


def _check(name: str, weights: Any) -> None:
    crop = weights.transforms().crop_size
    crop = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
    kwargs: dict[str, Any] = {}
    if name.startswith("vit_"):
        kwargs["image_size"] = crop  # torchvision sets it from the weights; we build without them
    if name == "googlenet":
        kwargs["aux_logits"] = False  # as loaded with weights: aux heads dropped
    with empty_weights(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tvm.get_model(name, weights=None, **kwargs)
    macs = count_macs(model, (3, crop, crop))
    published = weights.meta["_ops"] * 1e9
    tol = max(0.005 * published, 0.5e6)
    assert abs(macs - published) <= tol, (
        f"{name} {weights.name} @ {crop}: {macs / 1e9:.4f} GMACs vs published {weights.meta['_ops']}")
    assert count_params(model).total == weights.meta["num_params"]


@pytest.mark.parametrize("name,weights", _cases(FAST))
def test_published_macs_fast_subset(name: str, weights: Any) -> None:
    _check(name, weights)


@pytest.mark.slow
@pytest.mark.parametrize("name,weights", _cases(sorted(tvm.list_models(module=tvm))))
def test_published_macs_every_torchvision_model(name: str, weights: Any) -> None:
    _check(name, weights)
