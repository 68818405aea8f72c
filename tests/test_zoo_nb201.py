"""NAS-Bench-201 and NATS-Bench-SSS builders: published parameter counts, layout, parsing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zenfx.errors import UsageError
from zenfx.zoo.natsbench import nats_sss, parse_channels
from zenfx.zoo.nb201 import ZeroMap, all_conv3x3, nb201, parse_arch, pre_gap

SMALLEST = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_published_parameter_counts_with_10_class_head():
    assert n_params(nb201(all_conv3x3(), 10)) == 1_531_546  # the largest in the space
    assert n_params(nb201(SMALLEST, 10)) == 73_306  # the smallest


def test_params_by_hand_all_conv1x1_cifar100():
    # stem conv 3*16*9 + BN 32; per cell 6 convs CxC (1x1) + 6 BN (2C); ResBlocks; last BN; Linear
    def cell(c):
        return 6 * (c * c + 2 * c)

    def res(ci, co):
        return ci * co * 9 + 2 * co + co * co * 9 + 2 * co + ci * co

    want = (3 * 16 * 9 + 32 + 5 * cell(16) + res(16, 32) + 5 * cell(32) + res(32, 64) + 5 * cell(64) + 128
            + 64 * 100 + 100)
    arch = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    assert n_params(nb201(arch, 100)) == want


def test_forward_shapes_and_pre_gap():
    net = nb201(all_conv3x3(), 10)
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10)
    body = pre_gap(net)
    assert body(x).shape == (2, 64, 8, 8)
    out = net.classifier(torch.flatten(net.global_pooling(body(x)), 1))
    assert torch.allclose(out, net(x))


def test_cell_semantics_node_sums():
    torch.manual_seed(0)
    net = nb201("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|", 10)
    cell = net.cells[0]
    x = torch.randn(1, 16, 8, 8)
    # n1 = x, n2 = x + n1 = 2x, n3 = x + n2 = 3x (the none edge adds nothing)
    assert torch.allclose(cell(x), 3 * x)


def test_all_none_cell_gives_zero_map_and_zero_output_features():
    net = nb201("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 10)
    assert any(isinstance(m, ZeroMap) for m in net.modules())
    body = pre_gap(net).eval()
    y = body(torch.randn(2, 3, 32, 32))
    assert torch.allclose(y, y[:1].expand_as(y))  # the input cannot reach the output


@pytest.mark.parametrize("bad", ["|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_arch_strings(bad):
    with pytest.raises(UsageError):
        parse_arch(bad)


def test_nats_sss_layout_and_params_by_hand():
    c = [8, 16, 24, 32, 40]
    net = nats_sss(":".join(map(str, c)), 100)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)

    def cell(ci, co):
        # edges: 0->1, 0->2 conv3x3 ci->co; 1->2, 1->3, 2->3 conv3x3 co->co; 0->3 skip (ConvBN when ci != co)
        conv = 2 * (ci * co * 9 + 2 * co) + 3 * (co * co * 9 + 2 * co)
        return conv + (ci * co + 2 * co if ci != co else 0)

    def res(ci, co):
        return ci * co * 9 + 2 * co + co * co * 9 + 2 * co + ci * co

    want = 3 * c[0] * 9 + 2 * c[0] + cell(c[0], c[0]) + res(c[0], c[1]) + cell(c[1], c[2]) + res(c[2], c[3]) \
        + cell(c[3], c[4]) + 2 * c[4] + c[4] * 100 + 100
    assert n_params(net) == want
    from zenfx.zoo.nb201 import ConvBN

    assert isinstance(net.cells[2].edges[3], ConvBN)  # the width-changing skip 0->3: Conv1x1 + BN
    assert isinstance(net.cells[0].edges[3], nn.Identity)


def test_nats_channel_string_errors():
    with pytest.raises(UsageError):
        parse_channels("8:16:24")
    with pytest.raises(UsageError):
        parse_channels("8:a:24:32:40")


def test_cell_networks_trace_with_fx():
    import torch.fx as fx

    gm = fx.symbolic_trace(nb201(SMALLEST, 10))
    assert gm(torch.randn(1, 3, 32, 32)).shape == (1, 10)
