"""Structure of the package (issue 14, items 11-15): import layering, one preparation path, one
dtype/device helper, no dead code. Each test where behaviour changed failed on the code before."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_every_vcnn_pass_imports_alone_in_any_order() -> None:
    """A fresh interpreter imports each pass module first, and the attention/residual pair in both
    orders, without the package's ``__init__`` having imported the rest (no import cycle)."""
    orders = [["passes_attention", "passes_residual"], ["passes_residual", "passes_attention"],
              ["checks", "passes_gating"], ["passes_activation"]]
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
    imports = [line for line in graph_src.splitlines() if line.lstrip().startswith(("from", "import"))]
    assert not any("vcnn" in line for line in imports), imports


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


# --------------------------------------------------------------------------- item 12: one preparation path

SIZE = (3, 16, 16)


def _plain():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _placeholder_shape(gm):
    return next(n for n in gm.graph.nodes if n.op == "placeholder").meta["shape"]


@pytest.mark.usefixtures("one_thread")
def test_a_traced_model_is_reshaped_on_a_copy_never_in_place() -> None:
    """score / report / to_vcnn at another size or batch leave the caller's traced graph as it was
    (before: score and report re-propagated shapes on the caller's graph)."""
    import zenfx
    from zenfx.pipeline import load_and_trace

    tm = load_and_trace(_plain(), input_size=SIZE)
    gm = zenfx.trace(_plain(), SIZE)
    zenfx.score(tm, "zen", input_size=(3, 24, 24), batch_size=2, repeat=1)
    zenfx.score(gm, "zen", input_size=(3, 24, 24), batch_size=2, repeat=1)
    rep = zenfx.cost_report(gm, batch_size=4)
    zenfx.cost_report(tm, input_size=(3, 20, 20), batch_size=3)
    res = zenfx.to_vcnn(tm, (3, 12, 12))
    assert _placeholder_shape(tm.gm) == (1, *SIZE) and tm.gm.meta["zenfx_input_size"] == SIZE
    assert _placeholder_shape(gm) == (1, *SIZE) and gm.meta["zenfx_input_size"] == SIZE
    assert rep.memory is not None and rep.batch_size == 4
    assert res.input_size == (3, 12, 12) and res.output_shape == (1, 8, 12, 12)
    again = load_and_trace(tm, input_size=(3, 8, 8), batch_size=2)  # no re-trace: same module objects
    assert again.loaded is tm.loaded and _placeholder_shape(again.gm) == (2, 3, 8, 8)
    assert load_and_trace(tm) is tm


def test_to_vcnn_and_score_take_what_the_pipeline_takes() -> None:
    import zenfx
    from zenfx.vcnn.report import VCNNResult

    res = zenfx.to_vcnn("torchvision.models.resnet18", (3, 32, 32))  # a spec string (before: TypeError)
    assert res.verdict == "convertible" and res.name == "resnet18"

    class LooksConverted:  # duck typing on .verdict is gone: only a VCNNResult is taken as converted
        verdict = "convertible"
        gm = zenfx.trace(_plain(), SIZE)

    with pytest.raises(Exception) as info:
        zenfx.score(LooksConverted(), "params")
    assert not isinstance(info.value, AssertionError)
    small = zenfx.to_vcnn(_plain(), SIZE)
    assert isinstance(small, VCNNResult) and zenfx.score(small, "params").source == "vcnn"


# --------------------------------------------------------------------------- item 13: options


def test_dtype_and_device_speak_one_language() -> None:
    """score and report refuse the same --dtype with the same message (before: two tables, two texts)."""
    import zenfx
    from zenfx.errors import OptionError

    msgs = []
    for call in (lambda: zenfx.score(_plain(), "params", input_size=SIZE, dtype="int3"),
                 lambda: zenfx.cost_report(_plain(), input_size=SIZE, dtype="int3")):
        with pytest.raises(OptionError) as info:
            call()
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1] == "dtype 'int3' is not one of float32, float16, bfloat16"
    with pytest.raises(OptionError, match="^device 'tpu' is not a device"):
        zenfx.score(_plain(), "params", input_size=SIZE, device="tpu")
    with pytest.raises(OptionError, match="^device 'tpu' is not a device"):
        zenfx.cost_report(_plain(), input_size=SIZE, device="tpu")
    import zenfx.cost.latency as latency
    import zenfx.scoring as scoring

    assert not hasattr(latency, "DTYPES") and not hasattr(scoring, "DTYPES")  # one table: zenfx.devices


def test_api_errors_speak_api_and_the_cli_names_the_flag(cli) -> None:
    import zenfx
    from zenfx.errors import OptionError

    with pytest.raises(OptionError) as info:
        zenfx.score(_plain(), "zen", input_size=SIZE, batch_size=0)
    assert str(info.value) == "batch_size must be at least 1, got 0"
    with pytest.raises(OptionError, match="^batch_size must be at least 1, got 0$"):
        zenfx.cost_report(_plain(), input_size=SIZE, batch_size=0)
    with pytest.raises(OptionError, match="^repeat must be at least 1"):
        zenfx.score(_plain(), "zen", input_size=SIZE, repeat=0)
    code, out, err = cli("score", "torchvision.models.resnet18", "-r", "32", "--dtype", "int3")
    code2, out2, err2 = cli("report", "torchvision.models.resnet18", "-r", "32", "--dtype", "int3")
    assert code == code2 == 2
    line = "--dtype 'int3' is not one of float32, float16, bfloat16"
    assert line in err and line in err2, (err, err2)


@pytest.mark.usefixtures("one_thread")
def test_input_size_as_a_string_is_accepted_everywhere_or_refused_clearly() -> None:
    import zenfx
    from zenfx.errors import OptionError

    want = (3, 16, 16)
    assert zenfx.score(_plain(), "params", input_size="3,16,16").input_size == want
    assert zenfx.cost_report(_plain(), input_size="3x16x16").input_size == want
    assert zenfx.load_and_trace(_plain(), input_size="3,16,16").input_size == want
    assert zenfx.to_vcnn(_plain(), "3,16,16").input_size == want
    assert zenfx.convert_model(_plain(), input_size="3,16,16").input_size == want
    assert zenfx.inspect_model(_plain(), input_size="3,16,16")["input_size"] == list(want)
    for bad in ("3,16", "3,16,x", (3, 16.5, 16), (3, 0, 16)):
        with pytest.raises(OptionError, match="input_size .* must be three positive integers C,H,W"):
            zenfx.score(_plain(), "params", input_size=bad)


def test_kwargs_go_the_same_way_into_every_public_function(tmp_path) -> None:
    import zenfx

    f = tmp_path / "net.py"
    f.write_text("import torch.nn as nn\n"
                 "def build(width=4):\n"
                 "    return nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.ReLU())\n")
    spec, kw, size = f"{f}:build", {"width": 6}, (3, 8, 8)
    want = 3 * 6 * 9 + 6 + 2 * 6
    assert zenfx.score(spec, "params", kwargs=kw, input_size=size).value == want
    assert zenfx.cost_report(spec, kwargs=kw, input_size=size).params.total == want
    assert zenfx.inspect_model(spec, kwargs=kw, input_size=size)["params"] == want
    assert zenfx.load_and_trace(spec, kwargs=kw, input_size=size).gm.get_submodule("0").out_channels == 6
    assert zenfx.convert_model(spec, kwargs=kw, input_size=size).output_shape == (1, 6, 6, 6)
    assert zenfx.to_vcnn(spec, kwargs=kw, input_size=size).output_shape == (1, 6, 6, 6)
    assert zenfx.to_vcnn(spec, kwargs=kw, resolution=8).input_size == size


@pytest.mark.usefixtures("one_thread")
def test_value_is_never_silently_the_first_of_several_proxies() -> None:
    import zenfx
    from zenfx.errors import UsageError

    res = zenfx.score(_plain(), "phi,zen", input_size=SIZE, batch_size=2, repeat=1)
    assert res.value == res["zen"].value != res["phi"].value  # before: phi's, the first asked
    two = zenfx.score(_plain(), "params,flops", input_size=SIZE)
    with pytest.raises(UsageError, match="params, flops"):
        _ = two.value
    assert zenfx.score(_plain(), "params", input_size=SIZE).value == two["params"].value


# --------------------------------------------------------------------------- item 14: reusable pieces, no dead code


@pytest.mark.usefixtures("one_thread")
def test_score_proxy_scores_a_prepared_model_like_score() -> None:
    """The repeat loop a search reuses: prepare once, then score_proxy per seed / repeat count."""
    import zenfx
    from zenfx.scoring import ScoreOptions, prepare, score_proxy

    prep = prepare(_plain(), "zen", input_size=SIZE)
    for seed, repeat in ((0, 2), (3, 1)):
        got = score_proxy(prep, "zen", ScoreOptions(batch_size=2, repeat=repeat, seed=seed))
        want = zenfx.score(_plain(), "zen", input_size=SIZE, batch_size=2, repeat=repeat, seed=seed)["zen"]
        assert got.values == want.values and got.repeat == repeat


def test_dead_code_is_gone() -> None:
    import zenfx.data
    import zenfx.errors
    import zenfx.graph
    import zenfx.tracing
    import zenfx.vcnn._util

    for mod, name in ((zenfx.graph, "tensor_args"), (zenfx.tracing, "tracer_used"),
                      (zenfx.vcnn._util, "is_tensorish"), (zenfx.data, "is_gaussian"), (zenfx.errors, "EXIT_OK")):
        assert not hasattr(mod, name), f"{mod.__name__}.{name}"


# --------------------------------------------------------------------------- item 15: lint


def test_repository_is_lint_clean_under_the_pinned_ruff() -> None:
    """pyproject's [tool.ruff] rule set (F, E, I, UP, B, C901 <= 10) finds nothing; ./dev test runs
    the same check before pytest, so CI enforces it."""
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = (root / "pyproject.toml").read_text()
    assert re.search(r'select = \["F", "E", "I", "UP", "B", "C901"\]', config), "the [tool.ruff.lint] rule set"
    assert int(re.search(r"max-complexity = (\d+)", config).group(1)) <= 10
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed next to the interpreter")
    res = subprocess.run([exe, "check", "--quiet", "."], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    test_branch = re.search(r"\n\s+test\)(.*?);;", (root / "dev").read_text(), re.S)
    assert test_branch and test_branch.group(1).index('ruff" check') < test_branch.group(1).index("pytest")


# --------------------------------------------------------------------------- issue 19: the layout


def _module_graph():
    grimp = pytest.importorskip("grimp")
    import networkx as nx

    g = grimp.build_graph("zenfx", exclude_type_checking_imports=True)
    graph = nx.DiGraph()
    for m in g.modules:
        graph.add_node(m)
        for imp in g.find_modules_directly_imported_by(m):
            if not imp.startswith(m + "."):  # a package's __init__ re-exporting its own submodules
                graph.add_edge(m, imp)
    return graph


def test_the_library_has_no_import_cycles() -> None:
    """Function-level imports count too: before the restructure, loading -> genome -> mutation ->
    space -> ... formed a seven-module knot and pipeline <-> vcnn.convert another."""
    import networkx as nx

    knots = [sorted(c) for c in nx.strongly_connected_components(_module_graph()) if len(c) > 1]
    assert knots == []


def test_nothing_in_the_library_imports_the_cli() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "zenfx"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [("." * node.level) + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
            if any(n.startswith(("zenfx.cli", "cli", ".cli", "..cli")) for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


def test_the_import_contracts_hold() -> None:
    """What `./dev lint` checks: the layering of docs/architecture.md (pyproject [tool.importlinter])."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    exe = Path(sys.executable).with_name("lint-imports")
    exe = str(exe) if exe.exists() else shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed next to the interpreter")
    res = subprocess.run([exe, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "broken" not in res.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_no_function_is_longer_than_fifty_lines() -> None:
    """Issue 19: split along the steps the code has (a docstring counts; a typer command declares its
    options as named types so its signature stays short)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    long = []
    for folder in ("zenfx", "cli", "zoo"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 50:
                        long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []
