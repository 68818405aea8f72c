"""Every way a user can name a model resolves to the right module, and every mistake says why."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import zenfx
from zenfx.errors import UnknownModelError, UsageError
from zenfx.loading import parse_input_size, parse_kwargs, resolve_model

USER_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, width=8, num_classes=10):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.head(x.mean((2, 3)))

    def build(width=8, num_classes=10):
        return TinyNet(width, num_classes)

    instance = TinyNet(4, 3)
    not_a_model = 42
    """
)


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(USER_FILE)
    return path


def test_dotted_constructor_builds_torchvision_model_without_weights():
    lm = resolve_model("torchvision.models.resnet18")
    assert type(lm.module).__name__ == "ResNet"
    assert lm.source == "torchvision"
    assert lm.default_input_size == (3, 224, 224)
    assert sum(p.numel() for p in lm.module.parameters()) == 11_689_512


def test_module_colon_attr_spelling_is_equivalent():
    a = resolve_model("torchvision.models:resnet18", device="meta").module
    b = resolve_model("torchvision.models.resnet18", device="meta").module
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]


def test_registry_prefixes_and_bare_names():
    assert resolve_model("torchvision:mobilenet_v2", device="meta").source == "torchvision"
    assert resolve_model("timm:resnet18d", device="meta").source == "timm"
    assert resolve_model("mobilenet_v2", device="meta").source == "torchvision"  # torchvision only
    assert resolve_model("resnet18d", device="meta").source == "timm"  # timm only


def test_name_in_both_registries_is_an_error_listing_both_spellings():
    with pytest.raises(UnknownModelError) as info:
        resolve_model("resnet50")
    text = str(info.value)
    assert "torchvision:resnet50" in text and "timm:resnet50" in text


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as info:
        resolve_model("mobilenet_v22")
    assert "did you mean" in str(info.value) and "mobilenet_v2" in str(info.value)
    with pytest.raises(UnknownModelError):
        resolve_model("timm:no_such_model_xyz")
    with pytest.raises(UnknownModelError):
        resolve_model("torchvision.models.resnet1800")
    with pytest.raises(UnknownModelError):
        resolve_model("no_such_package_xyz.models.net")


def test_user_file_callable_class_and_instance(user_file):
    built = resolve_model(f"{user_file}:build", {"width": 6})
    assert built.source == "file" and built.module.conv.out_channels == 6
    cls = zenfx.load_model(f"{user_file}:TinyNet", width=5, num_classes=7)
    assert cls.conv.out_channels == 5 and cls.head.out_features == 7
    inst = zenfx.load_model(f"{user_file}:instance")
    assert inst.conv.out_channels == 4
    out = inst(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3)


def test_user_file_errors(user_file, tmp_path):
    with pytest.raises(UnknownModelError, match="did you mean build"):
        resolve_model(f"{user_file}:biuld")
    with pytest.raises(UsageError, match="not an nn.Module|neither"):
        resolve_model(f"{user_file}:not_a_model")
    with pytest.raises(UnknownModelError, match="does not exist"):
        resolve_model(f"{tmp_path}/missing.py:build")
    with pytest.raises(UsageError, match=":callable"):
        resolve_model(str(user_file))
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_abc\n")
    with pytest.raises(UsageError, match="importing"):
        resolve_model(f"{broken}:build")


def test_kwargs_are_python_literals():
    kw = parse_kwargs(["num_classes=10", "width_mult=0.5", "name='foo'", 'act="relu"', "flag=True", "sizes=(1, 2)"])
    assert kw == {"num_classes": 10, "width_mult": 0.5, "name": "foo", "act": "relu", "flag": True, "sizes": (1, 2)}
    with pytest.raises(UsageError):
        parse_kwargs(["novalue"])
    with pytest.raises(UsageError):
        parse_kwargs(["bad-key=1"])
    model = zenfx.load_model("torchvision.models.mobilenet_v2", num_classes=10, width_mult=0.5)
    assert model.classifier[-1].out_features == 10


def test_constructor_type_error_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot build"):
        resolve_model("torchvision.models.resnet18", {"no_such_arg": 1})


@pytest.mark.parametrize("spec,kw", [
    ("timm:resnet18", {"pretrained": True}),
    ("torchvision.models.resnet18", {"weights": "DEFAULT"}),
    ("torchvision:resnet18", {"weights": "IMAGENET1K_V1"}),
])
def test_pretrained_weights_are_refused(spec, kw):
    with pytest.raises(UsageError, match="never downloads weights"):
        resolve_model(spec, kw)


def test_default_input_size_follows_the_model():
    inception = resolve_model("torchvision.models.inception_v3", {"init_weights": False}, device="meta")
    assert inception.default_input_size == (3, 299, 299)
    assert resolve_model("timm:efficientnet_b3", device="meta").default_input_size == (3, 288, 288)
    # torchvision's ViTs only run at the size they were built for, whatever their weights' crop
    # (vit_h_14's DEFAULT weights are a 518 fine-tune of the 224 model the constructor builds)
    assert resolve_model("torchvision:vit_h_14", device="meta").default_input_size == (3, 224, 224)
    assert resolve_model("torchvision.models.vit_h_14", device="meta").default_input_size == (3, 224, 224)
    assert resolve_model("torchvision:vit_b_16", {"image_size": 160}, device="meta").default_input_size == (3, 160, 160)
    assert resolve_model("torchvision:efficientnet_b3", device="meta").default_input_size == (3, 300, 300)
    assert parse_input_size(None, 160, (3, 224, 224)) == (3, 160, 160)
    assert parse_input_size("1,64,48", 160) == (1, 64, 48)
    assert parse_input_size(None, None, (3, 299, 299)) == (3, 299, 299)
    for bad in ("3,224", "a,b,c", "0,1,1"):
        with pytest.raises(UsageError):
            parse_input_size(bad)


def test_meta_device_build_allocates_nothing():
    lm = resolve_model("torchvision.models.resnet50", device="meta")
    assert all(p.device.type == "meta" for p in lm.module.parameters())


def test_module_instance_through_api():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    lm = resolve_model(net)
    assert lm.module is net and lm.source == "module"
    with pytest.raises(UsageError):
        resolve_model(net, {"x": 1})


def test_meta_build_of_a_model_that_computes_widths_with_torch_ops():
    # RegNet calls .tolist() on tensors while building: a plain meta context cannot build it.
    lm = resolve_model("torchvision.models.regnet_y_400mf", device="meta")
    params = list(lm.module.parameters())
    assert params and all(p.device.type == "meta" for p in params)
    assert sum(p.numel() for p in params) == 4_344_144
    assert nn.Module.register_parameter.__qualname__ == "Module.register_parameter"  # patch undone
