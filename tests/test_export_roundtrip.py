"""Export round trips: the written module runs in a process where zenfx, timm and torchvision
cannot be imported, reproduces the source model's eval AND seeded train-mode outputs with the
exported weights, has exactly the model's parameter count, and takes an SGD step.

All cases of one group are exported in this process and then checked by ONE subprocess (a torch
import costs seconds on the shared machine), so each group pays for one interpreter start.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from zenfx.export import export_model

REPO = Path(__file__).resolve().parents[1]

RUNNER = r'''
import importlib.abc, importlib.util, json, math, sys

BLOCKED = ("zenfx", "timm", "torchvision")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: an exported module must need only torch")
        return None


sys.meta_path.insert(0, _Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]

import torch

torch.set_num_threads(1)


def diff(a, b):
    if isinstance(a, torch.Tensor):
        return float((a - b).abs().max()) if a.shape == b.shape else math.inf
    return max(diff(x, y) for x, y in zip(a, b))


def tensors(y):
    return [y] if isinstance(y, torch.Tensor) else [t for v in y for t in tensors(v)]


results = {}
for case in json.loads(open(sys.argv[1]).read()):
    spec = importlib.util.spec_from_file_location(case["module_name"], case["module"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = getattr(mod, case["class_name"])()
    net.load_state_dict(torch.load(case["weights"], weights_only=True), strict=True)
    data = torch.load(case["data"], weights_only=True)
    x = data["x"]
    net.eval()
    with torch.no_grad():
        eval_diff = diff(net(x), data["eval"])
    net.train()
    torch.manual_seed(0)
    with torch.no_grad():
        train_diff = diff(net(x), data["train"])
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    loss = sum(t.float().square().mean() for t in tensors(net(x)))  # every output: aux heads too
    loss.backward()
    opt.step()
    moved = sum(not torch.equal(b, p.detach()) for b, p in zip(before, net.parameters()))
    with_grad = sum(p.grad is not None for p in net.parameters())
    nonzero_grad = sum(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in net.parameters())
    results[case["name"]] = {
        "eval_diff": eval_diff, "train_diff": train_diff, "params": params, "loss": loss.item(),
        "moved": moved, "with_grad": with_grad, "nonzero_grad": nonzero_grad, "n_params": len(before),
        "finite": all(bool(torch.isfinite(p).all()) for p in net.parameters()),
    }
results["__blocked_loaded__"] = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
print(json.dumps(results))
'''


def _plain(y: Any) -> Any:
    """Outputs as tensors and plain tuples (a namedtuple of torchvision's would not load without it)."""
    return tuple(_plain(v) for v in y) if isinstance(y, tuple) else y


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[Any, Any]:
    """Eval output, then a seeded train-mode output (the runner repeats both in this order)."""
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        y_train = model(x)
    return _plain(y_eval), _plain(y_train)


def export_cases(tmp: Path, cases: list[tuple[str, Any, dict[str, Any], int]]) -> dict[str, dict[str, Any]]:
    """Export every (name, model-or-spec-or-genome, kwargs, resolution) and check all in one subprocess."""
    from zenfx.loading import resolve_model

    jobs = []
    info: dict[str, dict[str, Any]] = {}
    for i, (name, model, kwargs, res) in enumerate(cases):
        if callable(model) and not isinstance(model, torch.nn.Module):
            model = model()
        if hasattr(model, "edits"):
            from zenfx.genome import build

            module = build(model)
        elif isinstance(model, torch.nn.Module):
            module = model
        else:
            module = resolve_model(model, kwargs).module
        out = tmp / f"net{i}.py"
        result = export_model(module, out, weights=True, input_size=(3, res, res), check=False,
                              class_name=f"Net{i}")
        x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(i))
        y_eval, y_train = _outputs(module, x)
        torch.save({"x": x, "eval": y_eval, "train": y_train}, tmp / f"data{i}.pt")
        jobs.append({"name": name, "module": str(out), "module_name": f"net{i}", "class_name": f"Net{i}",
                     "weights": str(tmp / f"net{i}.pt"), "data": str(tmp / f"data{i}.pt")})
        info[name] = {"source_params": sum(p.numel() for p in module.parameters()), "result": result,
                      "source": out.read_text(), "scale": float(_first(y_eval).abs().max())}
    (tmp / "cases.json").write_text(json.dumps(jobs))
    (tmp / "runner.py").write_text(RUNNER)
    proc = subprocess.run([sys.executable, str(tmp / "runner.py"), str(tmp / "cases.json")], cwd=tmp,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ran.pop("__blocked_loaded__") == []
    for name in info:
        info[name].update(ran[name])
    return info


def _my_backbone_mutant() -> Any:
    """Three random edits (width, kernel, depth) on the user backbone, from core's mutate()."""
    import zenfx
    from zenfx.genome import Genome

    seed = Genome(seed=f"{REPO / 'examples' / 'my_backbone.py'}:build", kwargs={}, input_size=(3, 32, 32))
    mutant = zenfx.mutate(seed, random.Random(3), edits=3)
    assert len(mutant.edits) == 3
    return mutant


def _first(y: Any) -> torch.Tensor:
    return y if isinstance(y, torch.Tensor) else y[0]


FAST = [
    ("tv_resnet18", "torchvision.models.resnet18", {}, 32),
    ("tv_mobilenet_v3_small", "torchvision.models.mobilenet_v3_small", {}, 32),  # SE + hardswish
    ("tv_efficientnet_b0", "torchvision.models.efficientnet_b0", {}, 32),  # stochastic depth, dropout
    ("timm_efficientnet_b0", "timm:efficientnet_b0", {"drop_path_rate": 0.1, "drop_rate": 0.2}, 32),  # BNAct, DropPath
    ("timm_resnet18", "timm:resnet18", {}, 32),
    ("my_backbone", f"{REPO / 'examples' / 'my_backbone.py'}:build", {}, 32),
    ("my_backbone_mutant", _my_backbone_mutant, {}, 32),
    ("zoo_cifar_resnet20", "zoo:cifar_resnet20", {}, 32),
]


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return export_cases(tmp_path_factory.mktemp("export_fast"), FAST)
    finally:
        torch.set_num_threads(before)


def _assert_round_trip(case: dict[str, Any]) -> None:
    tol = 1e-5 * max(1.0, case["scale"])
    assert case["eval_diff"] <= tol, case
    assert case["train_diff"] <= tol, case  # same random draws (dropout, drop-path), same batch statistics
    assert case["params"] == case["source_params"]
    assert case["finite"] and math_isfinite(case["loss"])
    assert case["with_grad"] == case["n_params"]  # every parameter is in the autograd graph
    # the step moved the parameters that got a gradient (zero-initialised gammas and NFNet skip gains
    # block whole branches at init; a tiny step on a large value can round away in float32)
    assert case["nonzero_grad"] > 0 and case["moved"] >= 0.8 * case["nonzero_grad"]


def math_isfinite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


@pytest.mark.parametrize("name", [c[0] for c in FAST])
def test_round_trip_without_zenfx_timm_torchvision(fast: dict[str, dict[str, Any]], name: str) -> None:
    _assert_round_trip(fast[name])


def test_written_source_is_plain_torch(fast: dict[str, dict[str, Any]]) -> None:
    for name, case in fast.items():
        text = case["source"]
        assert str(REPO) not in text and "/tmp" not in text, name  # no absolute paths
        assert "pickle" not in text and "torch.load(" not in text.replace('torch.load("net', ""), name
        assert "timm" not in text.lower() and "torchvision" not in text and "zenfx." not in text, name
    timm_b0 = fast["timm_efficientnet_b0"]["source"]
    assert "BatchNormAct2d" not in timm_b0 and "nn.BatchNorm2d(" in timm_b0 and "nn.SiLU(" in timm_b0
    assert "class DropPath(nn.Module):" in timm_b0 and "DropPath(drop_prob=" in timm_b0
    assert "training=self.training" in timm_b0  # timm's classifier dropout follows the mode
    tv_b0 = fast["tv_efficientnet_b0"]["source"]
    assert "class StochasticDepth(nn.Module):" in tv_b0 and "nn.Dropout(p=0.2, inplace=True)" in tv_b0
    assert "nn.Hardswish(" in fast["tv_mobilenet_v3_small"]["source"]
    assert "self.layer1_0_conv1 = nn.Conv2d(64, 64, 3, padding=1, bias=False)" in fast["tv_resnet18"]["source"]


SLOW = [
    ("tv_resnet50", "torchvision.models.resnet50", {}, 64),
    ("tv_mobilenet_v2", "torchvision.models.mobilenet_v2", {}, 64),
    ("tv_regnet_x_400mf", "torchvision.models.regnet_x_400mf", {}, 64),
    ("tv_googlenet_aux", "torchvision.models.googlenet", {"aux_logits": True, "init_weights": True}, 64),
    ("tv_convnext_tiny", "torchvision.models.convnext_tiny", {}, 64),  # layer scale: loose parameters
    ("tv_shufflenet_v2", "torchvision.models.shufflenet_v2_x0_5", {}, 64),
    ("timm_tf_efficientnet_b0", "timm:tf_efficientnet_b0", {}, 64),  # Conv2dSame
    ("timm_mobilenetv3_small_100", "timm:mobilenetv3_small_100", {}, 64),
    ("timm_vit_tiny", "timm:vit_tiny_patch16_224", {"img_size": 32, "depth": 2}, 32),  # cls token, pos embed
    ("timm_convnext_atto", "timm:convnext_atto", {"drop_path_rate": 0.1}, 64),
    ("timm_nf_regnet_b0", "timm:nf_regnet_b0", {}, 64),  # ScaledStdConv2d written into the file
    ("zoo_nb201", "zoo:nb201", {}, 32),
    ("zoo_zennet_cifar_05m", "zoo:zennet_cifar_05m", {}, 32),
]


@pytest.mark.slow
def test_round_trip_slow_models(tmp_path: Path, one_thread: None) -> None:
    info = export_cases(tmp_path, SLOW)
    for name, case in info.items():
        try:
            _assert_round_trip(case)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert info["tv_googlenet_aux"]["result"].branched  # the aux heads run only in training


@pytest.mark.slow
def test_mutated_genomes_round_trip_slow(tmp_path: Path, one_thread: None) -> None:
    import zenfx
    from zenfx.genome import Genome

    cases = []
    seeds = ["torchvision.models.resnet18", "timm:efficientnet_b0", "torchvision.models.mobilenet_v3_small"]
    for i, seed in enumerate(seeds):
        g = Genome(seed=seed, kwargs={}, input_size=(3, 32, 32))
        cases.append((f"mutant_{i}", zenfx.mutate(g, random.Random(i), edits=3), {}, 32))
    info = export_cases(tmp_path, cases)
    for case in info.values():
        _assert_round_trip(case)
