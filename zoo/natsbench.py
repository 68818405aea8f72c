"""NATS-Bench size search space (Dong et al., TPAMI 2021) network from its channel string.

``C0:C1:C2:C3:C4`` with each width in {8, 16, ..., 64}. Fixed topology: the NAS-Bench-201 macro
network with one cell per stage and the cell
``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|``::

    stem Conv3x3(3->C0)+BN; cell(C0->C0); ResBlock(C0->C1, s2); cell(C1->C2);
    ResBlock(C2->C3, s2); cell(C3->C4); BN -> ReLU -> GAP -> Linear

Where a cell's input and output widths differ, edges leaving node 0 map Cin->Cout and a skip
edge from node 0 becomes Conv1x1(Cin->Cout)+BN (the reference's stride-1 FactorizedReduce).
"""

from __future__ import annotations

from zenfx.errors import UsageError

from .nb201 import Cell, CellNetwork, ResBlock, parse_arch

SSS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SSS_WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)


def parse_channels(channels: str) -> list[int]:
    try:
        cs = [int(c) for c in str(channels).strip().split(":")]
    except ValueError:
        raise UsageError(f"NATS-SSS channel string must be C0:C1:C2:C3:C4 integers, got {channels!r}") from None
    if len(cs) != 5 or min(cs) < 1:
        raise UsageError(f"NATS-SSS channel string needs 5 positive widths, got {channels!r}")
    return cs


def nats_sss(channels: str, num_classes: int = 100) -> CellNetwork:
    """The NATS-Bench size-space network of ``channels`` (default 100 classes: CIFAR-100)."""
    c0, c1, c2, c3, c4 = parse_channels(channels)
    geno = parse_arch(SSS_CELL)
    blocks = [Cell(geno, c0, c0), ResBlock(c0, c1, 2), Cell(geno, c1, c2), ResBlock(c2, c3, 2), Cell(geno, c3, c4)]
    net = CellNetwork(c0, blocks, c4, num_classes)
    net.arch = channels  # type: ignore[assignment]
    return net


__all__ = ["SSS_CELL", "SSS_WIDTHS", "nats_sss", "parse_channels"]
