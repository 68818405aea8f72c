"""Hand-written backbones of the new-user sweep (issue 22), used as file seeds by the tests:
``tests/sweep_nets.py:gelu_ln`` etc. Small, CIFAR-sized, each with one pattern that tripped zenfx."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-last LayerNorm on an NCHW tensor: permute, normalise C, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ChanLN(nn.LayerNorm):
    """The same pattern written as one expression."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NextBlock(nn.Module):
    """ConvNeXt-like: depthwise 7x7, GroupNorm, pointwise expansion, GELU, pointwise back, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.GroupNorm(1, c)
        self.pw1 = nn.Conv2d(c, 2 * c, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))


class GeluLN(nn.Module):
    """ConvNeXt-like: a 2x2 stride-2 stem and a channels-last LayerNorm, two stages."""

    def __init__(self, stem: int = 16, wide: int = 32, norm: type[nn.Module] = LayerNorm2d) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 2, stride=2), norm(stem))
        self.stages = nn.Sequential(
            nn.Sequential(NextBlock(stem), NextBlock(stem)),
            nn.Sequential(norm(stem), nn.Conv2d(stem, wide, 2, stride=2), NextBlock(wide)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def gelu_ln() -> nn.Module:
    return GeluLN(16, 32)


def chan_ln() -> nn.Module:
    """Channels (24) differ from the spatial width after the stem (16 at 32x32)."""
    return GeluLN(24, 40, norm=ChanLN)


def timm_ln() -> nn.Module:
    """The same with timm's own LayerNorm2d."""
    from timm.layers import LayerNorm2d as TimmLN

    return GeluLN(24, 40, norm=TimmLN)


class TwoBranch(nn.Module):
    """Two branches joined by a channel concat: not VCNN-convertible."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU())
        self.tail = nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.tail(torch.cat([self.a(x), self.b(x)], 1))


def twobranch() -> nn.Module:
    return TwoBranch()


class SE(nn.Module):
    """MobileNetV3's gate written functionally: x * hardsigmoid(fc2(relu(fc1(avgpool(x)))))."""

    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(8, c // r), 1)
        self.fc2 = nn.Conv2d(max(8, c // r), c, 1)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    pool = "functional"  # how the squeeze is written: functional, module or mean (set by mobile_se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "module":
            s = self.gap(x)
        elif self.pool == "mean":
            s = x.mean((2, 3), keepdim=True)
        else:
            s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class IR(nn.Module):
    """Inverted residual with depthwise conv and SE."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 3) -> None:
        super().__init__()
        mid = cin * expand
        self.pw = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                                nn.Hardswish())
        self.se = SE(mid)
        self.pwl = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwl(self.se(self.dw(self.pw(x))))
        return x + y if self.res else y


class MobileSE(nn.Module):
    """MobileNetV3-like: five stride-2 stages, so at 32x32 the last stage runs at 1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(IR(16, 16, 1), IR(16, 24, 2), IR(24, 24, 1), IR(24, 40, 2), IR(40, 48, 2),
                                    IR(48, 64, 2), IR(64, 64, 1))
        self.head = nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128), nn.Hardswish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def mobile_se(pool: str = "functional") -> nn.Module:
    """At 32x32 the last two blocks run at 1x1."""
    m = MobileSE()
    for se in (mod for mod in m.modules() if isinstance(mod, SE)):
        se.pool = pool
    return m


class ResLoop(nn.Module):
    """ResNet-like whose blocks are a ModuleList run in a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = F.relu(x + b(x))
        return x


def res_loop() -> nn.Module:
    return ResLoop()


def plain() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())


class Res(nn.Module):
    """A residual block c -> c (stride 1): repeatable."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn(self.conv(x)))


class Down(nn.Module):
    """A plain block that changes the shape: not repeatable."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FlatFeatures(nn.Module):
    """A flat ``features`` list: stem conv, a lone 16->16 residual block, a shape-changing block, and a
    one-block ``nn.Sequential`` stage."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                      Res(16), Down(16, 32))
        self.stage = nn.Sequential(Res(32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.features(x))


def flat_features() -> nn.Module:
    return FlatFeatures()


class GateSE(nn.Module):
    """An SE gate as modules: x * sigmoid(fc2(relu(fc1(pool(x)))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, 8, 1)
        self.fc2 = nn.Conv2d(8, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))


class Mixed(nn.Module):
    """Every kind of VCNN conversion change in one small net: timm's BatchNormAct2d (a functional
    batch_norm made a module), GELU and Hardswish (made ReLU), an SE gate (stripped), Dropout and
    Identity (removed), a GroupNorm (made BatchNorm), a layer-scale parameter read in forward, and a
    residual run of blocks (depth edits)."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import BatchNormAct2d

        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(*[MixedBlock(16) for _ in range(2)])
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), BatchNormAct2d(32),
                                  nn.Dropout(0.1), nn.Identity())
        self.mid = nn.Sequential(nn.Conv2d(32, 48, 3, padding=1, bias=False), nn.GroupNorm(4, 48), nn.Hardswish())
        self.se = GateSE(48)
        self.head = nn.Sequential(nn.Conv2d(48, 64, 1, bias=False), nn.BatchNorm2d(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.se(self.mid(self.down(self.blocks(self.bn(self.stem(x)))))))


class MixedBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(2 * c)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(2 * c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.gamma = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


def mixed() -> nn.Module:
    return Mixed()
