"""Structure of the package (issue 14, items 11-15): import layering, one preparation path, one
dtype/device helper, no dead code; behaviour tests, each of which failed on the code before."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

PASS_MODULES = ["passes_identity", "passes_residual", "passes_gating", "passes_attention", "passes_activation",
                "passes_norm", "passes_head", "checks"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_every_vcnn_pass_imports_alone_in_any_order() -> None:
    """A fresh interpreter imports each pass module first, and the attention/residual pair in both
    orders, without the package's ``__init__`` having imported the rest (no import cycle)."""
    orders = [[m] for m in PASS_MODULES] + [list(p) for p in itertools.permutations(
        ["passes_attention", "passes_residual", "passes_gating", "checks"], 2)]
    code = "\n".join([
        "import importlib, sys",
        f"orders = {orders!r}",
        "for order in orders:",
        "    for k in [k for k in sys.modules if k == 'zenfx' or k.startswith('zenfx.')]:",
        "        del sys.modules[k]",
        "    for m in order:",
        "        importlib.import_module('zenfx.vcnn.' + m)",
        "print('ok')",
    ])
    res = _run(code)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_no_pass_imports_another_pass_for_predicates() -> None:
    """The only pass-to-pass import is attention -> residual (one direction); the predicates both
    use come from ``zenfx.graph``, which imports nothing from ``zenfx.vcnn``."""
    import ast
    from pathlib import Path

    import zenfx

    root = Path(zenfx.__file__).resolve().parent
    edges = set()
    for f in sorted((root / "vcnn").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and (node.module or "").startswith(
                    ("passes_", "checks")):
                edges.add((f.stem, node.module))
    assert edges <= {("passes_attention", "passes_residual"), ("convert", "checks")}, edges
    graph_src = (root / "graph.py").read_text()
    assert "vcnn" not in "".join(line for line in graph_src.splitlines() if line.lstrip().startswith(("from", "import")))


def test_graph_predicates_are_public_and_agree_with_the_passes() -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import zenfx.graph as g
    from zenfx.tracing import trace

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x + F.silu(self.conv(x))          # residual, main = conv branch
            pooled = y.mean((2, 3), keepdim=True)   # global pool
            y = y * torch.sigmoid(pooled)
            t = y.flatten(2).transpose(1, 2)
            t = t + self.attn(t, t, t, need_weights=False)[0]
            return self.fc(t)

    gm = trace(Block(), (8, 4, 4))
    dep = g.input_dependent(gm)
    nodes = {n.name: n for n in gm.graph.nodes}
    assert g.is_non_relu_activation(gm, nodes["silu"])
    assert g.is_attention_node(gm, nodes["attn"])
    assert g.is_global_pool_like(nodes["mean"], dep)
    split = g.residual_branches(gm, nodes["add"], dep)
    assert split is not None and not split.tie and not split.attention
    assert split.shortcut.op == "placeholder" and nodes["conv"] in split.main_region
    assert split.main_weight[0] == 1 and split.shortcut_weight == (0, 0)
    att = g.residual_branches(gm, nodes["add_1"], dep)
    assert att is not None and att.attention
    assert g.graph_batch(gm) == 1
    assert g.shape(nodes["x"]) == (1, 8, 4, 4) and g.tensor_shapes(nodes["x"]) == ((1, 8, 4, 4),)
    assert g.shape(nodes["attn"]) is None and g.tensor_shapes(nodes["attn"])[0] == (1, 16, 8)  # a tuple: (out, w)
