"""NAS-Bench-201 cell network (Dong & Yang, ICLR 2020) built from its architecture string.

Macro layout (CIFAR, 32x32 input, C=16, N=5), as in the benchmark's ``TinyNetwork``::

    stem Conv3x3(3->C, no bias) + BN
    N cells at C;  ResBlock(C->2C, s2);  N cells at 2C;  ResBlock(2C->4C, s2);  N cells at 4C
    BN -> ReLU -> global average pool -> Linear(4C -> num_classes)

A cell has 4 nodes; node j = sum over i<j of op_{i->j}(node i); node 3 is the output. The string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists the edges into nodes 1, 2, 3. Ops:
``none`` (zero), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU -> Conv
(no bias) -> BN, affine), ``avg_pool_3x3`` (stride 1, padding 1, ``count_include_pad=False``).
ResBlock(Cin->Cout, s2): a = ReLU-Conv3x3(s2)-BN, b = ReLU-Conv3x3-BN, shortcut = AvgPool(2, s2)
-> Conv1x1(no bias); output = b(a(x)) + shortcut(x).

``none`` edges are left out of the node sums (adding ``x * 0`` changes nothing); a node whose
every incoming edge is ``none`` is an explicit zero map of its input's shape, as in the reference.

The network exposes ``forward_pre_gap`` (everything up to the final BN -> ReLU) and
``features``/``head`` so zero-shot proxies that need the pre-GAP map (Zen-Score) can cut it there.
With a 10-class head, all-``nor_conv_3x3`` has 1,531,546 parameters and
``|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|`` 73,306.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from zenfx.errors import UsageError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_C = 16
NB201_N = 5

_ARCH_RE = re.compile(r"^\|[^|]+(\|[^|]*)*\|$")


def parse_arch(arch: str) -> list[list[tuple[str, int]]]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> [[(a,0)], [(b,0),(c,1)], [(d,0),(e,1),(f,2)]]."""
    text = arch.strip()
    groups = text.split("+")
    if len(groups) != 3:
        raise UsageError(f"NB201 arch string needs 3 '+'-separated groups, got {len(groups)}: {arch!r}")
    out: list[list[tuple[str, int]]] = []
    for j, grp in enumerate(groups, start=1):
        items = [s for s in grp.strip().strip("|").split("|") if s]
        if len(items) != j:
            raise UsageError(f"NB201 node {j} needs {j} incoming edges, got {len(items)} in {arch!r}")
        edges = []
        for item in items:
            op, _, src = item.partition("~")
            if op not in OPS:
                raise UsageError(f"unknown NB201 op {op!r} in {arch!r} (known: {', '.join(OPS)})")
            if not src.isdigit() or int(src) >= j:
                raise UsageError(f"bad source node {src!r} for node {j} in {arch!r}")
            edges.append((op, int(src)))
        out.append(edges)
    return out


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout))


class ConvBN(nn.Sequential):
    """Conv1x1 + BN: a skip edge that changes width (NATS-Bench size space)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))


class ZeroMap(nn.Module):
    """A node with no live incoming edge: zeros of its input's shape (the reference's x.mul(0.))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, cin: int, cout: int) -> nn.Module:
    if op == "nor_conv_3x3":
        return ReLUConvBN(cin, cout, 3)
    if op == "nor_conv_1x1":
        return ReLUConvBN(cin, cout, 1)
    if op == "avg_pool_3x3":
        if cin != cout:  # the reference puts a ReLU-Conv1x1-BN in front of the pool
            return nn.Sequential(ReLUConvBN(cin, cout, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False))
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity() if cin == cout else ConvBN(cin, cout)
    raise UsageError(f"op {op!r} has no module")


class Cell(nn.Module):
    """One NB201 cell; edges out of node 0 map cin->cout, all other edges cout->cout."""

    def __init__(self, arch: str | list[list[tuple[str, int]]], cin: int, cout: int) -> None:
        super().__init__()
        self.genotype = parse_arch(arch) if isinstance(arch, str) else arch
        self.edges = nn.ModuleList()
        self.sources: list[list[int]] = []  # per node: indices into self.edges' source nodes
        self.index: list[list[int]] = []
        for node_edges in self.genotype:
            srcs, idx = [], []
            for op, src in node_edges:
                if op == "none":
                    continue
                self.edges.append(make_op(op, cin if src == 0 else cout, cout))
                srcs.append(src)
                idx.append(len(self.edges) - 1)
            self.sources.append(srcs)
            self.index.append(idx)
        self.zero = ZeroMap()
        self.cin, self.cout = cin, cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for srcs, idx in zip(self.sources, self.index, strict=True):
            total = None
            for s, i in zip(srcs, idx, strict=True):
                y = self.edges[i](nodes[s])
                total = y if total is None else total + y
            if total is None:
                ref = nodes[-1]
                # node 0 holds cin channels, every later node cout (static, so torch.fx can trace it)
                if len(nodes) == 1 and self.cin != self.cout:  # zero node straight after a width change
                    ref = ref[:, :1].expand(-1, self.cout, -1, -1)
                total = self.zero(ref)
            nodes.append(total)
        return nodes[-1]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(cin, cout, 1, 1, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class CellNetwork(nn.Module):
    """Stem, a list of cells/ResBlocks, final BN-ReLU, GAP, Linear (the NB201 ``TinyNetwork``)."""

    def __init__(self, stem_c: int, blocks: Sequence[nn.Module], last_c: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem_c, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_c))
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(last_c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_c, num_classes)
        self.num_classes = num_classes
        self.last_channels = last_c

    def forward_pre_gap(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastact(self.cells(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.global_pooling(self.forward_pre_gap(x))
        return self.classifier(torch.flatten(y, 1))


class PreGAP(nn.Module):
    """A view of a CellNetwork that stops before the global average pool (shares its modules)."""

    def __init__(self, net: CellNetwork) -> None:
        super().__init__()
        self.stem, self.cells, self.lastact = net.stem, net.cells, net.lastact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastact(self.cells(self.stem(x)))


def pre_gap(net: CellNetwork) -> PreGAP:
    return PreGAP(net)


def nb201(arch: str, num_classes: int = 10, C: int = NB201_C, N: int = NB201_N) -> CellNetwork:
    """The NAS-Bench-201 network of ``arch`` (10 classes: CIFAR-10, 100: CIFAR-100)."""
    geno = parse_arch(arch)
    blocks: list[nn.Module] = []
    widths = [C] * N + [2 * C] + [2 * C] * N + [4 * C] + [4 * C] * N
    reduction = [False] * N + [True] + [False] * N + [True] + [False] * N
    prev = C
    for w, red in zip(widths, reduction, strict=True):
        blocks.append(ResBlock(prev, w, 2) if red else Cell(geno, prev, w))
        prev = w
    net = CellNetwork(C, blocks, prev, num_classes)
    net.arch = arch  # type: ignore[assignment]
    return net


def all_conv3x3() -> str:
    return "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


__all__ = ["Cell", "CellNetwork", "OPS", "PreGAP", "ResBlock", "make_op", "nb201", "parse_arch", "pre_gap"]
