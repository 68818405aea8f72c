"""Zen-NAS's block language, read into ordinary ``nn.Module``s and written back.

Zen-NAS (Lin et al., ICCV 2021) publishes its networks as strings such as
``SuperConvK3BNRELU(3,64,1,1)SuperResK1K5K1(64,168,1,16,3)...SuperConvK1BNRELU(32,512,1,1)``.
This module reads that language (facts from the reference's ``PlainNet/`` definitions, our own
code) so the released ZenNets, and any string a user has, become plain PyTorch networks that
zenfx traces, converts, scores, mutates and searches like every other model.

Blocks (``in,out`` channels, ``stride`` of the first sub-layer, ``L`` sub-layers, ``b`` the
bottleneck width)::

    SuperConvK{1,3,5,7}BNRELU(in,out,stride,L)      L x (Conv kxk - BN - ReLU)
    SuperResK{3,5,7}K{3,5,7}(in,out,stride,b,L)      L basic units: kxk(->b) BN ReLU kxk(->out) BN
    SuperResK1K{3,5,7}K1(in,out,stride,b,L)          L x 2 bottleneck units: 1x1(->b) BN ReLU kxk BN ReLU 1x1(->out) BN
    SuperResIDWE{1,2,4,6}K{3,5,7}(in,out,stride,b,L) L x 2 inverted-residual units:
                                                     1x1(->m) BN ReLU dw kxk BN ReLU 1x1 BN
                                                     (unit A ends at b, unit B at out; m = E x the
                                                      unit's output width, rounded to a multiple of 8, >= 8)

The two kernels of ``SuperResKxKx`` are always equal in the reference (K3K3, K5K5, K7K7 only).
Every unit is residual and followed by a ReLU after the add: the first unit of a block adds a
projection (1x1 conv with bias + BN) whatever its shape, later units add their input, or a
projection where the unit changes the width (IDW's b != out). ``use_se=True`` puts the
reference's squeeze-excitation (pool, 1x1 to a quarter width, BN, ReLU, 1x1, BN, sigmoid) after
the ReLU that follows each unit's kxk convolution, as its training runs of the ImageNet ZenNets
do. BatchNorm uses eps 1e-3 like the reference's MasterNet. The network ends with global average
pooling and a Linear head.

``parse(s)`` builds the network, ``parse_blocks(s)`` only reads it (a malformed string raises a
one-line :class:`~zenfx.errors.UsageError` naming the character position), and
``to_string(model)`` writes a network back, reading every width, kernel, stride and depth from
its layers, so a ZenNet that zenfx mutated prints as the string it now is, or says why the
language cannot express it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zenfx.errors import UsageError

BN_EPS = 1e-3
SE_RATIO = 0.25
CONV_KERNELS = (1, 3, 5, 7)
RES_KERNELS = (3, 5, 7)
IDW_EXPANSIONS = (1, 2, 4, 6)
KNOWN = ("SuperConvK{1,3,5,7}BNRELU, SuperResK{3,5,7}K{3,5,7} (equal kernels), "
         "SuperResK1K{3,5,7}K1, SuperResIDWE{1,2,4,6}K{3,5,7}")

_NAME_PATTERNS = (
    ("conv", re.compile(r"SuperConvK(\d+)BNRELU")),
    ("k1kxk1", re.compile(r"SuperResK1K(\d+)K1")),
    ("idw", re.compile(r"SuperResIDWE(\d+)K(\d+)")),
    ("kxkx", re.compile(r"SuperResK(\d+)K(\d+)")),
)
_ARG_NAMES = {"conv": ("in", "out", "stride", "L"), "kxkx": ("in", "out", "stride", "bottleneck", "L"),
              "k1kxk1": ("in", "out", "stride", "bottleneck", "L"), "idw": ("in", "out", "stride", "bottleneck", "L")}


def smart_round(x: float, base: int = 8) -> int:
    """The reference's width rounding: nearest multiple of ``base``, at least ``base``."""
    return max(base, round(x / float(base)) * base)


@dataclass(frozen=True)
class BlockSpec:
    """One super-block of a structure string; ``position`` is where it started (not compared)."""

    kind: str  # "conv" | "kxkx" | "k1kxk1" | "idw"
    kernel: int
    in_channels: int
    out_channels: int
    stride: int
    layers: int
    bottleneck: int | None = None
    expansion: int | None = None
    position: int = field(default=-1, compare=False)

    @property
    def name(self) -> str:
        k = self.kernel
        return {"conv": f"SuperConvK{k}BNRELU", "kxkx": f"SuperResK{k}K{k}", "k1kxk1": f"SuperResK1K{k}K1",
                "idw": f"SuperResIDWE{self.expansion}K{k}"}[self.kind]

    def __str__(self) -> str:
        args = [self.in_channels, self.out_channels, self.stride]
        if self.kind != "conv":
            args.append(self.bottleneck)
        args.append(self.layers)
        return f"{self.name}({','.join(str(a) for a in args)})"


# --------------------------------------------------------------------------- reading strings


def _fail(text: str, pos: int, message: str) -> UsageError:
    near = text[pos:pos + 24].replace("\n", " ")
    return UsageError(f"Zen-NAS structure string, character {pos}: {message}"
                      + (f" (at '{near}{'...' if len(text) > pos + 24 else ''}')" if near else " (at the end)"))


def _block_kind(name: str, text: str, pos: int) -> tuple[str, int, int | None]:
    for kind, pattern in _NAME_PATTERNS:
        m = pattern.fullmatch(name)
        if not m:
            continue
        nums = [int(g) for g in m.groups()]
        if kind == "conv" and nums[0] in CONV_KERNELS:
            return kind, nums[0], None
        if kind == "k1kxk1" and nums[0] in RES_KERNELS:
            return kind, nums[0], None
        if kind == "idw" and nums[0] in IDW_EXPANSIONS and nums[1] in RES_KERNELS:
            return kind, nums[1], nums[0]
        if kind == "kxkx" and nums[0] == nums[1] and nums[0] in RES_KERNELS:
            return kind, nums[0], None
        if kind == "kxkx" and nums[0] != nums[1]:
            raise _fail(text, pos, f"'{name}' has two different kernels; the language has only "
                                   "SuperResK3K3, SuperResK5K5 and SuperResK7K7")
        raise _fail(text, pos, f"'{name}' has an unsupported kernel size or expansion (known: {KNOWN})")
    raise _fail(text, pos, f"unknown block '{name}' (known: {KNOWN})")


def _read_args(text: str, i: int, name: str, start: int) -> tuple[list[int], int]:
    """The integers of ``name(a,b,...)`` from just after its '('; returns them and the index after ')'."""
    n, args = len(text), []
    while True:
        arg_start = i
        while i < n and text[i].isdigit():
            i += 1
        if i >= n:
            raise _fail(text, start, f"'{name}(' is never closed")
        if i == arg_start:
            raise _fail(text, i, f"expected a non-negative integer in '{name}(...)', found '{text[i]}'")
        args.append(int(text[arg_start:i]))
        if text[i] == ")":
            return args, i + 1
        if text[i] != ",":
            raise _fail(text, i, f"expected ',' or ')' in '{name}(...)', found '{text[i]}'")
        i += 1


def _read_block(text: str, i: int) -> tuple[BlockSpec, int]:
    """One ``Name(args)`` starting at ``i`` (no leading space); returns it and the index after it."""
    start, n = i, len(text)
    while i < n and text[i].isalnum():
        i += 1
    name = text[start:i]
    if not name:
        raise _fail(text, i, f"expected a block name, found '{text[i]}'")
    if i >= n or text[i] != "(":
        raise _fail(text, i, f"expected '(' after '{name}'")
    kind, kernel, expansion = _block_kind(name, text, start)
    args, i = _read_args(text, i + 1, name, start)
    names = _ARG_NAMES[kind]
    if len(args) != len(names):
        raise _fail(text, start, f"{name} takes {len(names)} arguments ({','.join(names)}), got {len(args)}")
    for label, value in zip(names, args, strict=True):
        if value < 1:
            raise _fail(text, start, f"{name}: {label} must be at least 1, got {value}")
    if kind == "conv":
        cin, cout, stride, layers = args
        return BlockSpec(kind, kernel, cin, cout, stride, layers, position=start), i
    cin, cout, stride, bottleneck, layers = args
    return BlockSpec(kind, kernel, cin, cout, stride, layers, bottleneck, expansion, position=start), i


def parse_blocks(text: str) -> list[BlockSpec]:
    """Read a structure string into block records; the first error raises a one-line UsageError
    naming the character position. Whitespace between blocks is allowed."""
    if not isinstance(text, str):
        raise UsageError(f"a Zen-NAS structure must be a string, got {type(text).__name__}")
    blocks: list[BlockSpec] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        spec, i = _read_block(text, i)
        if blocks and spec.in_channels != blocks[-1].out_channels:
            raise _fail(text, spec.position, f"{spec.name} takes {spec.in_channels} input channels but the "
                                             f"block before gives {blocks[-1].out_channels}")
        blocks.append(spec)
    if not blocks:
        raise UsageError("Zen-NAS structure string is empty")
    return blocks


# --------------------------------------------------------------------------- building modules


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False)


class SqueezeExcite(nn.Module):
    """The reference's SE: x * sigmoid(BN(1x1(ReLU(BN(1x1(avgpool(x))))))), a quarter-width squeeze."""

    def __init__(self, channels: int, ratio: float = SE_RATIO) -> None:
        super().__init__()
        mid = max(1, int(round(channels * ratio)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = _bn(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.bn2(self.expand(self.relu(self.bn1(self.reduce(self.pool(x))))))
        return x * torch.sigmoid(gate)


class ConvBNReLU(nn.Sequential):
    """One sub-layer of ``SuperConvKxBNRELU``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__(OrderedDict(conv=_conv(cin, cout, k, stride), bn=_bn(cout), relu=nn.ReLU()))


class ResUnit(nn.Module):
    """relu(body(x) + shortcut(x)); the shortcut is ``proj`` (1x1 conv with bias + BN) or x itself."""

    def __init__(self, body: nn.Sequential, cin: int, cout: int, stride: int, force_proj: bool) -> None:
        super().__init__()
        self.body = body
        self.proj: nn.Module | None = None
        if force_proj or stride != 1 or cin != cout:
            self.proj = nn.Sequential(OrderedDict(conv=nn.Conv2d(cin, cout, 1, stride=stride), bn=_bn(cout)))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(self.body(x) + shortcut)


def _kxkx_body(cin: int, mid: int, cout: int, k: int, stride: int, se: bool) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = [("conv1", _conv(cin, mid, k, stride)), ("bn1", _bn(mid)),
                                           ("relu1", nn.ReLU())]
    if se:
        layers.append(("se", SqueezeExcite(mid)))
    layers += [("conv2", _conv(mid, cout, k)), ("bn2", _bn(cout))]
    return nn.Sequential(OrderedDict(layers))


def _three_conv_body(cin: int, mid: int, cout: int, k: int, stride: int, se: bool, depthwise: bool) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", _conv(cin, mid, 1)), ("bn1", _bn(mid)), ("relu1", nn.ReLU()),
        ("conv2", _conv(mid, mid, k, stride, groups=mid if depthwise else 1)), ("bn2", _bn(mid)), ("relu2", nn.ReLU()),
    ]
    if se:
        layers.append(("se", SqueezeExcite(mid)))
    layers += [("conv3", _conv(mid, cout, 1)), ("bn3", _bn(cout))]
    return nn.Sequential(OrderedDict(layers))


class SuperBlock(nn.Sequential):
    """A super-block: a Sequential of its sub-layers (a sub-layer after the first keeps the shape,
    so a depth edit that repeats one keeps the network expressible)."""


class SuperConvBlock(SuperBlock):
    def __init__(self, b: BlockSpec, use_se: bool = False) -> None:
        super().__init__(*[ConvBNReLU(b.in_channels if i == 0 else b.out_channels, b.out_channels, b.kernel,
                                      b.stride if i == 0 else 1) for i in range(b.layers)])


class SuperResKXKXBlock(SuperBlock):
    def __init__(self, b: BlockSpec, use_se: bool = False) -> None:
        units = []
        for i in range(b.layers):
            cin, stride = (b.in_channels, b.stride) if i == 0 else (b.out_channels, 1)
            body = _kxkx_body(cin, int(b.bottleneck or 0), b.out_channels, b.kernel, stride, use_se)
            units.append(ResUnit(body, cin, b.out_channels, stride, force_proj=i == 0))
        super().__init__(*units)


class ResPair(nn.Sequential):
    """One sub-layer of SuperResK1KxK1 / SuperResIDWExKx: two residual units."""


def _unit(cin: int, mid: int, cout: int, k: int, stride: int, se: bool, depthwise: bool, first: bool) -> ResUnit:
    body = _three_conv_body(cin, mid, cout, k, stride, se, depthwise)
    return ResUnit(body, cin, cout, stride, force_proj=first)


class SuperResK1KXK1Block(SuperBlock):
    def __init__(self, b: BlockSpec, use_se: bool = False) -> None:
        pairs, bott, out, k = [], int(b.bottleneck or 0), b.out_channels, b.kernel
        for i in range(b.layers):
            cin, stride = (b.in_channels, b.stride) if i == 0 else (out, 1)
            pairs.append(ResPair(_unit(cin, bott, out, k, stride, use_se, False, i == 0),
                                 _unit(out, bott, out, k, 1, use_se, False, False)))
        super().__init__(*pairs)


class SuperResIDWBlock(SuperBlock):
    def __init__(self, b: BlockSpec, use_se: bool = False) -> None:
        pairs, bott, out, k, e = [], int(b.bottleneck or 0), b.out_channels, b.kernel, int(b.expansion or 1)
        for i in range(b.layers):
            cin, stride = (b.in_channels, b.stride) if i == 0 else (out, 1)
            pairs.append(ResPair(_unit(cin, smart_round(bott * e), bott, k, stride, use_se, True, i == 0),
                                 _unit(bott, smart_round(out * e), out, k, 1, use_se, True, False)))
        super().__init__(*pairs)
        self.expansion = e  # kept for to_string: tiny widths can round to the same m for two E


_BLOCK_CLASSES: dict[str, type[SuperBlock]] = {"conv": SuperConvBlock, "kxkx": SuperResKXKXBlock,
                                               "k1kxk1": SuperResK1KXK1Block, "idw": SuperResIDWBlock}


class ZenNet(nn.Module):
    """A network of Zen-NAS super-blocks, global average pooling and a Linear head."""

    def __init__(self, structure: str | list[BlockSpec], num_classes: int = 1000, use_se: bool = False) -> None:
        super().__init__()
        specs = parse_blocks(structure) if isinstance(structure, str) else list(structure)
        if int(num_classes) < 1:
            raise UsageError(f"num_classes must be positive, got {num_classes}")
        self.blocks = nn.Sequential(*[_BLOCK_CLASSES[b.kind](b, bool(use_se)) for b in specs])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(specs[-1].out_channels, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.blocks(x)), 1))


def parse(structure: str, num_classes: int = 1000, use_se: bool = False) -> ZenNet:
    """Build the network a structure string describes."""
    return ZenNet(structure, num_classes=num_classes, use_se=use_se)


def build(structure: str, num_classes: int = 1000, use_se: bool = False) -> ZenNet:
    """Constructor for ``zoo:zennas -k structure='...'`` (same as :func:`parse`)."""
    return parse(structure, num_classes, use_se)


# --------------------------------------------------------------------------- writing strings


class _NotExpressible(Exception):
    pass


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise _NotExpressible(why)


def _conv_facts(conv: Any) -> tuple[int, int, int, int, int]:
    _need(isinstance(conv, nn.Conv2d), f"expected a Conv2d, found {type(conv).__name__}")
    k, k2 = conv.kernel_size
    s, s2 = conv.stride
    _need(k == k2 and s == s2, "non-square kernel or stride")
    _need(conv.padding == ((k - 1) // 2,) * 2 and conv.dilation == (1, 1),
          "padding or dilation the language cannot express")
    return conv.in_channels, conv.out_channels, k, s, conv.groups


def _unit_facts(unit: Any, n_convs: int, depthwise: bool) -> tuple[int, int, int, int, int, bool]:
    """(in, mid, out, kernel, stride, has_proj) of a residual unit with 2 or 3 body convs."""
    _need(isinstance(unit, ResUnit), f"expected a residual unit, found {type(unit).__name__}")
    convs = [m for m in unit.body if isinstance(m, nn.Conv2d)]
    _need(len(convs) == n_convs, f"a unit with {len(convs)} convolutions where the block needs {n_convs}")
    facts = [_conv_facts(c) for c in convs]
    if n_convs == 2:
        (cin, mid, k, s, g1), (mid2, cout, k2, s2, g2) = facts
        _need(k == k2, f"its two kernels differ ({k} and {k2})")
        _need(g1 == g2 == 1 and s2 == 1 and mid2 == mid, "grouped or strided second convolution")
    else:
        (cin, mid, k1, s1, g1), (m2, m3, k, s, g2), (m4, cout, k3, s3, g3) = facts
        _need(k1 == k3 == 1 and s1 == s3 == 1 and g1 == g3 == 1, "its outer convolutions are not plain 1x1")
        _need(m2 == m3 == m4 == mid, "its middle width changes inside the unit")
        _need(g2 == (mid if depthwise else 1),
              "its middle convolution is not " + ("depthwise" if depthwise else "dense"))
    return cin, mid, cout, k, s, unit.proj is not None


def _describe(block: nn.Module) -> BlockSpec:
    n = len(block)  # type: ignore[arg-type]
    _need(n >= 1, "an empty block")
    if isinstance(block, SuperConvBlock):
        facts = []
        for sub in block:
            _need(isinstance(sub, ConvBNReLU), f"expected Conv-BN-ReLU, found {type(sub).__name__}")
            facts.append(_conv_facts(sub.conv))
        cin, cout, k, stride, groups = facts[0]
        _need(k in CONV_KERNELS, f"kernel {k} (the language has 1, 3, 5, 7)")
        for ci, co, kk, s, g in facts[1:]:
            _need((ci, co, kk, s, g) == (cout, cout, k, 1, 1), "its sub-layers differ in width, kernel or stride")
        _need(groups == 1, "a grouped convolution")
        return BlockSpec("conv", k, cin, cout, stride, n)
    if isinstance(block, SuperResKXKXBlock):
        units = [_unit_facts(u, 2, False) for u in block]
        cin, mid, cout, k, stride, proj = units[0]
        _need(k in RES_KERNELS, f"kernel {k} (the language has 3, 5, 7)")
        _need(proj, "its first unit has no projection shortcut")
        for u in units[1:]:
            _need(u == (cout, mid, cout, k, 1, False), "its sub-layers differ in width, kernel or stride")
        return BlockSpec("kxkx", k, cin, cout, stride, n, mid)
    if isinstance(block, (SuperResK1KXK1Block, SuperResIDWBlock)):
        dw = isinstance(block, SuperResIDWBlock)
        pairs = []
        for pair in block:
            _need(isinstance(pair, ResPair) and len(pair) == 2, "a sub-layer that is not a pair of residual units")
            pairs.append((_unit_facts(pair[0], 3, dw), _unit_facts(pair[1], 3, dw)))
        (cin, mid_a, bott_a, k, stride, proj), (b_in, mid_b, cout, k_b, s_b, _) = pairs[0]
        _need(k in RES_KERNELS and k_b == k, "kernels differ or are not 3, 5, 7")
        _need(proj and s_b == 1, "its first unit has no projection shortcut, or a strided second unit")
        if not dw:
            _need(bott_a == cout and mid_b == mid_a, "its two units disagree on widths")
            bottleneck, expansion = mid_a, None
        else:
            _need(b_in == bott_a, "its two units disagree on widths")
            bottleneck = bott_a
            fits = [e for e in IDW_EXPANSIONS
                    if smart_round(bottleneck * e) == mid_a and smart_round(cout * e) == mid_b]
            stored = getattr(block, "expansion", None)
            _need(bool(fits), f"its expanded widths {mid_a}/{mid_b} match no expansion of 1, 2, 4, 6")
            expansion = stored if stored in fits else fits[0]
        first = pairs[0]
        for pa, pb in pairs[1:]:
            _need(pa[0] == cout and pa[4] == 1 and pa[1:4] == first[0][1:4] and pa[5] == (cout != bott_a)
                  and pb == first[1], "its sub-layers differ in width, kernel or stride")
        return BlockSpec("idw" if dw else "k1kxk1", k, cin, cout, stride, n, bottleneck, expansion)
    raise _NotExpressible(f"{type(block).__name__} is not a Zen-NAS super-block")


def describe(model: nn.Module) -> list[BlockSpec]:
    """The block records of a network built from the language (after any edits), or a UsageError
    saying which block the language cannot express and why."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not len(blocks):
        raise UsageError(f"{type(model).__name__} is not a Zen-NAS network (no 'blocks' Sequential of super-blocks)")
    out: list[BlockSpec] = []
    for i, block in enumerate(blocks):
        try:
            spec = _describe(block)
        except _NotExpressible as exc:
            raise UsageError(f"blocks.{i} ({type(block).__name__}) is not expressible in the Zen-NAS language: "
                             f"{exc}") from None
        if out and spec.in_channels != out[-1].out_channels:
            raise UsageError(f"blocks.{i} takes {spec.in_channels} channels but blocks.{i - 1} gives "
                             f"{out[-1].out_channels}")
        out.append(spec)
    return out


def to_string(model: nn.Module | list[BlockSpec] | str) -> str:
    """The structure string of a network built from the language (``to_string(parse(s)) == s``)."""
    if isinstance(model, str):
        specs = parse_blocks(model)
    elif isinstance(model, list):
        specs = model
    else:
        specs = describe(model)
    return "".join(str(b) for b in specs)


__all__ = ["BlockSpec", "SqueezeExcite", "ZenNet", "build", "describe", "parse", "parse_blocks", "smart_round",
           "to_string"]
