"""Tracing a spread of real models, the fallback tracer, shapes on every node, and failure diagnosis."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import zenfx
from zenfx.errors import NotTraceableError, ShapeError
from zenfx.graph import shape, summarize
from zenfx.tracing import TRACER_LEAF, TRACER_SYMBOLIC, trace

SPREAD = [
    # spec, input size, expected tracer, expected output shape (batch 1)
    ("torchvision.models.resnet18", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("torchvision.models.mobilenet_v2", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("torchvision.models.mobilenet_v3_large", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("torchvision.models.efficientnet_b0", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("torchvision.models.regnet_y_400mf", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("timm:resnet50", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("timm:efficientnet_b0", (3, 64, 64), TRACER_SYMBOLIC, (1, 1000)),
    ("timm:tf_efficientnet_b0", (3, 64, 64), TRACER_LEAF, (1, 1000)),  # Conv2dSame needs the leaf tracer
]


@pytest.mark.parametrize("spec,size,tracer,out", SPREAD, ids=[s[0] for s in SPREAD])
def test_real_models_trace_with_shapes_on_every_node(spec, size, tracer, out):
    tm = zenfx.load_and_trace(spec, input_size=size, device="meta")
    assert tm.tracer == tracer
    for node in tm.gm.graph.nodes:
        if node.op == "output":
            continue
        assert "shape" in node.meta, f"{node.name} has no shape"
    info = summarize(tm.gm)
    assert info["output_shape"] == out
    assert info["convolutions"] > 10 and info["batchnorms"] > 5


def test_resnet18_structure_counts():
    info = zenfx.inspect_model("torchvision.models.resnet18")
    assert info["convolutions"] == 20  # 17 main-path convs + 3 projection shortcuts
    assert info["batchnorms"] == 20
    assert info["residual_adds"] == 8
    assert info["concats"] == 0 and info["multiplies"] == 0
    assert info["params"] == 11_689_512
    assert info["output_shape"] == (1, 1000)


def test_densenet_and_se_features_are_counted():
    dn = zenfx.inspect_model("torchvision.models.densenet121", input_size=(3, 64, 64))
    assert dn["concats"] > 50
    mb = zenfx.inspect_model("torchvision.models.mobilenet_v3_large", input_size=(3, 64, 64))
    assert mb["multiplies"] == 8  # the eight squeeze-excitation gates


def test_real_weight_model_propagates_with_fake_tensors_and_stays_runnable():
    model = zenfx.load_model("torchvision.models.resnet18")
    gm = trace(model, (3, 32, 32), batch_size=2)
    assert [n for n in gm.graph.nodes if n.op == "placeholder"][0].meta["shape"] == (2, 3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(gm(x), model(x))


UNTRACEABLE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Gate(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3)
            self.gate = Gate()

        def forward(self, x):
            return self.gate(self.stem(x))

    def build():
        return Net()
    """
)


def test_untraceable_model_names_module_and_source_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(UNTRACEABLE)
    model = zenfx.load_model(f"{path}:build")
    with pytest.raises(NotTraceableError) as info:
        trace(model, (3, 16, 16))
    msg = str(info.value)
    assert "module 'gate' (Gate)" in msg
    assert "bad.py:7" in msg and "if x.sum() > 0" in msg
    assert info.value.exit_code == 3


def test_model_that_cannot_run_at_resolution_names_the_layer():
    with pytest.raises(ShapeError) as info:
        zenfx.load_and_trace("torchvision.models.alexnet", input_size=(3, 32, 32), device="meta")
    msg = str(info.value)
    assert "features." in msg and "MaxPool2d" in msg and "(1, " in msg
    assert info.value.exit_code == 2


def test_tracing_does_not_change_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model.train()
    gm = trace(model, (3, 8, 8))
    assert model.training and gm.training
    assert shape(list(gm.graph.nodes)[-2]) == (1, 4, 6, 6)


class _OptionalArgs(nn.Module):
    """A forward with optional arguments, like timm's Hiera (``mask=None``) or ``features_only``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 4)

    def forward(self, x, mask=None, features_only=False, scale=1.0):
        y = self.conv(x) * scale
        if mask is not None:
            y = y * mask
        if features_only:
            return y
        return self.head(y.mean((2, 3)))


def test_optional_forward_arguments_are_traced_at_their_defaults():
    # As proxies they would take the `mask is not None` branch, a graph model(x) never runs.
    model = _OptionalArgs().eval()
    gm = trace(model, (3, 12, 12))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert len(placeholders) == 1
    assert not [n for n in gm.graph.nodes if n.op == "call_function" and "assert" in str(n.target)]
    assert summarize(gm)["multiplies"] == 0
    assert shape(list(gm.graph.nodes)[-2]) == (1, 4)
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(gm(x), model(x))


def test_timm_hiera_with_optional_mask_traces():
    tm = zenfx.load_and_trace("timm:hiera_tiny_224", device="meta")
    assert shape(list(tm.gm.graph.nodes)[-2]) == (1, 1000)
