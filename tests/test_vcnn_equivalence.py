"""The converted graph computes exactly what a hand-written plain conv-BN-ReLU twin with the same weights does."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.efficientnet import MBConv, MBConvConfig
from torchvision.ops import SqueezeExcitation

from zenfx.pipeline import to_vcnn

SIZE = (3, 64, 64)


def _conv_like(src: nn.Conv2d) -> nn.Conv2d:
    """A fresh Conv2d with the same hyper-parameters, holding a copy of ``src``'s weights."""
    conv = nn.Conv2d(src.in_channels, src.out_channels, src.kernel_size, src.stride, src.padding,
                     dilation=src.dilation, groups=src.groups, bias=src.bias is not None)
    conv.load_state_dict(src.state_dict())
    return conv


def _bn_like(src: nn.BatchNorm2d) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(src.num_features, eps=src.eps, momentum=src.momentum)
    bn.load_state_dict(src.state_dict())
    return bn


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine terms, so an eval-mode comparison exercises them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def plain_resnet_twin(net: torchvision.models.ResNet) -> nn.Sequential:
    """ResNet written by hand as a plain chain: every block is conv-BN-ReLU ... conv-BN, then ReLU."""
    layers: list[nn.Module] = [_conv_like(net.conv1), _bn_like(net.bn1), nn.ReLU(),
                               nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in stage:
            if isinstance(block, torchvision.models.resnet.BasicBlock):
                pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
            else:
                pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3)]
            for i, (c, b) in enumerate(pairs):
                layers += [_conv_like(c), _bn_like(b)]
                if i < len(pairs) - 1:
                    layers.append(nn.ReLU())
            layers.append(nn.ReLU())  # the block's final ReLU, after the (removed) residual add
    return nn.Sequential(*layers)


def _assert_same(converted: nn.Module, twin: nn.Module, train: bool = False) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, *SIZE)
    converted.train(train)
    twin.train(train)
    with torch.no_grad():
        a, b = converted(x), twin(x)
    assert a.shape == b.shape
    assert torch.equal(a, b), f"max abs diff {(a - b).abs().max().item()}"


@pytest.mark.parametrize("arch", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_resnet_equals_plain_twin(arch):
    net = getattr(torchvision.models, arch)(weights=None).eval()
    _randomise_bn(net)
    res = to_vcnn(net, SIZE)
    assert res.verdict == "convertible"
    assert res.counts["residual"] == (8 if arch == "resnet18" else 16)
    twin = plain_resnet_twin(net).eval()
    _assert_same(res.gm, twin)
    _assert_same(res.gm, twin, train=True)  # BN in batch-statistics mode too


@pytest.mark.slow
def test_resnet50_narrow_equivalence():
    """resnet50's bottleneck + projection handling, at a tiny width so it stays in the fast set."""
    net = torchvision.models.resnet50(weights=None, width_per_group=8).eval()
    _randomise_bn(net)
    res = to_vcnn(net, SIZE)
    assert not any("downsample" in name for name, _ in res.gm.named_modules())
    _assert_same(res.gm, plain_resnet_twin(net).eval())


# --------------------------------------------------------------------------- SE network


class SEBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(cout, cout // 4, 1)
        self.fc2 = nn.Conv2d(cout // 4, cout, 1)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(out)))))
        out = out * s
        return torch.relu(self.short(x) + out)  # shortcut first: argument order must not matter


class SENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(SEBlock(16, 16, 1), SEBlock(16, 32, 2), SEBlock(32, 32, 1))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_se_network_equals_plain_twin():
    net = SENet().eval()
    _randomise_bn(net)
    res = to_vcnn(net, SIZE)
    assert res.verdict == "convertible"
    assert res.counts["gate"] == 3 and res.counts["residual"] == 3
    layers: list[nn.Module] = [_conv_like(net.stem[0]), _bn_like(net.stem[1]), nn.ReLU()]
    for b in net.blocks:
        layers += [_conv_like(b.conv1), _bn_like(b.bn1), nn.ReLU(), _conv_like(b.conv2), _bn_like(b.bn2), nn.ReLU()]
    twin = nn.Sequential(*layers).eval()
    _assert_same(res.gm, twin)
    names = {n for n, _ in res.gm.named_modules()}
    assert not any(k in n for n in names for k in ("fc1", "fc2", "short"))  # gate and projection removed


# --------------------------------------------------------------------------- MBConv


class MBConvNet(nn.Module):
    """A stem plus torchvision's EfficientNet MBConv blocks (SiLU, SE with sigmoid, stochastic depth)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.SiLU())
        self.blocks = nn.Sequential(
            MBConv(MBConvConfig(4, 3, 1, 16, 16, 1), 0.2, nn.BatchNorm2d),   # residual
            MBConv(MBConvConfig(4, 3, 2, 16, 24, 1), 0.2, nn.BatchNorm2d),   # no residual (stride 2)
            MBConv(MBConvConfig(6, 5, 1, 24, 24, 1), 0.2, nn.BatchNorm2d),   # residual
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def mbconv_twin(net: MBConvNet) -> nn.Sequential:
    layers: list[nn.Module] = [_conv_like(net.stem[0]), _bn_like(net.stem[1]), nn.ReLU()]
    for blk in net.blocks:
        for unit in blk.block:
            if isinstance(unit, SqueezeExcitation):
                continue
            conv, bn = unit[0], unit[1]
            layers += [_conv_like(conv), _bn_like(bn)]
            if len(unit) > 2:  # Conv2dNormActivation with an activation
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_mbconv_equals_plain_twin():
    net = MBConvNet().eval()
    _randomise_bn(net)
    res = to_vcnn(net, SIZE)
    assert res.verdict == "convertible"
    assert res.counts["gate"] == 3 and res.counts["residual"] == 2 and res.counts["activation"] >= 7
    _assert_same(res.gm, mbconv_twin(net).eval())


def test_timm_efficientnet_bn_act_follows_train_mode():
    """timm's BatchNormAct2d traces to a frozen functional batch_norm; the VCNN graph uses a real BN module."""
    timm = pytest.importorskip("timm")
    net = timm.create_model("test_efficientnet", num_classes=10).eval()  # timm's tiny EfficientNet
    res = to_vcnn(net, SIZE)
    assert res.counts["bn_module"] == res.bn_count > 0
    assert all(not (n.op == "call_function" and "batch_norm" in str(n.target)) for n in res.gm.graph.nodes)
    x = torch.randn(2, *SIZE)
    res.gm.train()
    with torch.no_grad():
        y_train = res.gm(x)
    res.gm.eval()
    with torch.no_grad():
        y_eval = res.gm(x)
    assert not torch.allclose(y_train, y_eval)  # batch statistics in train mode, running stats in eval
