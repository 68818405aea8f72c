"""Activation memory on a hand-computed net, plus params counting."""

from __future__ import annotations

import torch
from torch import nn

from zenfx import trace
from zenfx.cost.memory import activation_memory
from zenfx.cost.params import count_params


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.conv1(x))  # conv1 allocates 8*8*8; relu is in place
        b = self.conv2(a)  # 4*8*8
        c = a[:, :4] + b  # the slice is a view of a; the add allocates 4*8*8
        return torch.flatten(c, 1)  # a view


def test_hand_computed_peak_and_largest() -> None:
    # float32, batch 1 on a 3x8x8 input:
    #   x 192 el = 768 B; conv1 512 el = 2048 B (x freed after conv1: live 2048)
    #   relu in place: 0; conv2 256 el = 1024 B (live 3072)
    #   add 1024 B while a (via its slice) and b are still live: 4096 B = the peak
    #   then a and b are freed; flatten is a view of the add's output.
    gm = trace(Tiny(), (3, 8, 8))
    mem = activation_memory(gm)
    assert mem.peak_bytes == 768 + 2048 + 1024 + 1024 - 768  # 4096
    assert mem.peak_bytes == 4096
    assert mem.largest_bytes == 2048
    assert mem.largest_shape == (1, 8, 8, 8)
    assert mem.total_allocated_bytes == 768 + 2048 + 1024 + 1024
    kinds = {n.name: n.kind for n in mem.nodes}
    assert kinds["relu"] == "inplace"
    assert kinds["getitem"] == "view" and kinds["flatten"] == "view"
    # the peak is reached after x was freed: conv1 alone (x + out) is only 2816 B
    assert mem.nodes[1].live_after == 768 + 2048


def test_batch_and_dtype_scale() -> None:
    gm2 = trace(Tiny(), (3, 8, 8), batch_size=2)
    assert activation_memory(gm2).peak_bytes == 2 * 4096
    assert activation_memory(gm2, torch.float16).peak_bytes == 4096
    assert activation_memory(gm2, torch.bfloat16).largest_bytes == 2 * 2048 // 2


def test_not_inplace_relu_allocates() -> None:
    net = Tiny()
    net.relu = nn.ReLU()
    mem = activation_memory(trace(net, (3, 8, 8)))
    # relu now allocates 2048 B while conv1's output is still live: 2048 + 2048 at relu, freed conv1,
    # then relu-out 2048 + conv2 1024 + add 1024 = 4096 again; peak = 4096 (relu step 2048+2048)
    assert mem.peak_bytes == 4096
    assert mem.total_allocated_bytes == 768 + 2048 + 2048 + 1024 + 1024


def test_by_module_and_params() -> None:
    mem = activation_memory(trace(Tiny(), (3, 8, 8)))
    by = mem.by_module()
    assert by["conv1"] == 2048 and by["conv2"] == 1024 and by["relu"] == 0
    pc = count_params(Tiny())
    assert pc.total == (3 * 8 * 9 + 8) + (8 * 4 + 4)
    assert pc.by_module["conv1"] == 3 * 8 * 9 + 8


def test_params_trainable_and_shared() -> None:
    lin = nn.Linear(4, 4)
    net = nn.Sequential(lin, nn.ReLU(), lin, nn.BatchNorm1d(4))
    net[3].weight.requires_grad_(False)
    pc = count_params(net)
    assert pc.total == 20 + 8  # shared linear counted once
    assert pc.trainable == 20 + 4
