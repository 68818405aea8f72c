"""Export behaviour on small hand-made models, and the CLI end to end.

The heavy evidence (real families in a process without zenfx/timm/torchvision) is in
test_export_roundtrip.py; here each test pins one rule of the generated code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from zenfx.errors import NotTraceableError, UsageError
from zenfx.export import NotExportableError, build_exported, export_model

REPO = Path(__file__).resolve().parents[1]


def _same(model: nn.Module, res, x: torch.Tensor) -> None:
    """Eval and seeded train outputs of the export equal the model's."""
    net = build_exported(res.source, res.class_name, res.state_dict)
    for mode in (False, True):
        model.train(mode)
        net.train(mode)
        with torch.no_grad():
            torch.manual_seed(0)
            want = model(x)
            torch.manual_seed(0)
            got = net(x)
        assert torch.allclose(want, got, rtol=0, atol=1e-6), mode


class AuxNet(nn.Module):
    """A training-only auxiliary head, like GoogLeNet's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.aux = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.training:
            return y + self.aux(y)
        return y


def test_training_branch_is_written_under_self_training(one_thread: None) -> None:
    model = AuxNet()
    res = export_model(model, input_size=(3, 8, 8))
    assert res.branched and "if self.training:" in res.source
    assert res.params == res.source_params == sum(p.numel() for p in model.parameters())
    _same(model, res, torch.randn(2, 3, 8, 8))


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.dropout(x, p=0.5, training=self.training))


def test_functional_dropout_follows_the_mode_without_a_branch() -> None:
    model = FunctionalDropout()
    res = export_model(model, input_size=(8, 1, 1), check=False)
    assert not res.branched and "training=self.training" in res.source
    _same(model, res, torch.randn(4, 8))


class LayerScale(nn.Module):
    """Loose tensors: a parameter read directly in forward, a constant-filled one, a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 96, 1)
        self.gamma = nn.Parameter(torch.full((96, 1, 1), 1e-2))
        self.shift = nn.Parameter(torch.randn(96, 4, 4))
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x - self.mean) * self.gamma + self.shift


def test_loose_tensors_are_registered_with_their_shapes() -> None:
    model = LayerScale()
    res = export_model(model, input_size=(3, 4, 4))
    assert "self.gamma = nn.Parameter(torch.full((96, 1, 1), 0.01))" in res.source
    assert "self.register_buffer('mean', torch.tensor(" in res.source  # small: values written out
    assert "self.shift = nn.Parameter(torch.empty(96, 4, 4).normal_(" in res.source
    assert "# values: the weights file (this draw matches their mean and std)" in res.source
    assert any("shift" in n for n in res.notes)
    assert res.params == res.source_params
    _same(model, res, torch.randn(2, 3, 4, 4))
    fresh = build_exported(res.source, res.class_name)  # without weights: written values are right
    assert torch.equal(fresh.gamma, model.gamma.detach()) and torch.equal(fresh.mean, model.mean)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_shared_parameters_stay_shared() -> None:
    model = Tied()
    res = export_model(model, input_size=(4, 1, 1), check=False)
    net = build_exported(res.source, res.class_name, res.state_dict)
    assert net.b.weight is net.a.weight
    assert res.params == res.source_params == 4 * 4 + 4 + 4


def test_timm_norm_act_is_written_as_norm_plus_activation() -> None:
    from timm.layers import BatchNormAct2d

    model = nn.Sequential(nn.Conv2d(3, 8, 3), BatchNormAct2d(8, act_layer=nn.GELU))
    res = export_model(model, input_size=(3, 8, 8))
    assert "self.m1 = nn.BatchNorm2d(8)" in res.source and "self.m1_act = nn.GELU()" in res.source
    assert set(res.state_dict) == {f"m{k}" for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                                     "1.running_var", "1.num_batches_tracked")}
    _same(model, res, torch.randn(2, 3, 8, 8))


@torch.fx.wrap
def _opaque_scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2


class WithLeafFunction(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _opaque_scale(self.conv(x))


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y


def test_a_leaf_function_is_refused_by_name(tmp_path: Path) -> None:
    out = tmp_path / "net.py"
    with pytest.raises(NotExportableError, match="_opaque_scale") as info:
        export_model(WithLeafFunction(), out, input_size=(3, 4, 4))
    assert info.value.exit_code == 2 and not out.exists()


def test_an_untraceable_forward_names_the_module() -> None:
    model = nn.Sequential(nn.ReLU(), DataDependent())
    with pytest.raises(NotTraceableError, match=r"'1' \(DataDependent\)"):
        export_model(model, input_size=(3, 4, 4))


def test_a_failed_export_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    out = tmp_path / "net.py"
    out.write_text("# mine\n")
    with pytest.raises(NotExportableError):
        export_model(WithLeafFunction(), out, weights=True, input_size=(3, 4, 4))
    assert out.read_text() == "# mine\n" and not (tmp_path / "net.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["net.py"]  # no temporary files left


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.py"):
        export_model(AuxNet(), tmp_path / "net.txt")
    with pytest.raises(UsageError, match="identifier"):
        export_model(AuxNet(), tmp_path / "net.py", class_name="my net")
    with pytest.raises(UsageError, match="does not exist"):
        export_model(AuxNet(), tmp_path / "missing" / "net.py")


def test_class_name_and_header(tmp_path: Path) -> None:
    spec = f"{REPO / 'examples' / 'my_backbone.py'}:build"
    res = export_model(spec, tmp_path / "bb.py", weights=True, input_size=(3, 16, 16), kwargs={"width": 16})
    text = (tmp_path / "bb.py").read_text()
    assert res.class_name == "MyBackbone" and "class MyBackbone(nn.Module):" in text
    assert str(REPO) not in text and "my_backbone.py:build" in text
    assert 'torch.load("bb.pt", weights_only=True)' in text
    assert res.files == [str(tmp_path / "bb.py"), str(tmp_path / "bb.pt")]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "bb.py").stat().st_mode & 0o777 == 0o666 & ~umask  # like any file the user writes
    other = export_model(spec, None, class_name="Tiny", input_size=(3, 16, 16), kwargs={"width": 16})
    assert "class Tiny(nn.Module):" in other.source and other.module_path is None


# --------------------------------------------------------------------------- CLI


def test_cli_export_json_lists_the_files(cli, tmp_path: Path) -> None:
    out = tmp_path / "net.py"
    code, stdout, _ = cli("export", f"{REPO / 'examples' / 'my_backbone.py'}:build", "--out", out, "--weights",
                          "-k", "width=16", "-r", "16", "--class-name", "Backbone", "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["files"] == [str(out), str(tmp_path / "net.pt")] and doc["class_name"] == "Backbone"
    assert doc["checked"] is True and doc["max_abs_diff"] == 0.0 and doc["params"] == doc["source_params"]
    sd = torch.load(tmp_path / "net.pt", weights_only=True)
    assert sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == doc["params"]


def test_cli_export_errors_exit_2(cli, tmp_path: Path) -> None:
    code, _, stderr = cli("export", "timm:no_such_net", "--out", tmp_path / "a.py")
    assert code == 2 and "unknown model" in stderr
    code, stdout, _ = cli("export", "torchvision.models.resnet18", "--out", tmp_path / "a.txt", "--json")
    assert code == 2 and json.loads(stdout)["exit_code"] == 2
    assert list(tmp_path.iterdir()) == []


def test_cli_export_human_output(cli, tmp_path: Path) -> None:
    code, stdout, _ = cli("export", f"{REPO / 'examples' / 'my_backbone.py'}:build", "-o", tmp_path / "n.py",
                          "-r", "16", "-k", "width=8")
    assert code == 0 and "wrote" in stdout and "n.py" in stdout and "match the model" in stdout


def test_cli_exports_a_genome_file(cli, tmp_path: Path, one_thread: None) -> None:
    import random

    import zenfx
    from zenfx.genome import Genome

    seed = Genome(seed=f"{REPO / 'examples' / 'my_backbone.py'}:build", kwargs={"width": 16}, input_size=(3, 16, 16))
    mutant = zenfx.mutate(seed, random.Random(0), edits=2)
    mutant.save(tmp_path / "g.json")
    code, stdout, _ = cli("export", tmp_path / "g.json", "-o", tmp_path / "net.py", "--weights", "--json")
    assert code == 0, stdout
    doc = json.loads(stdout)
    assert doc["class_name"] == "MyBackboneMutant" and doc["input_size"] == [3, 16, 16] and doc["checked"]
    text = (tmp_path / "net.py").read_text()
    assert "genome g.json" in text and str(tmp_path) not in text
    model = zenfx.build(mutant).eval()
    net = build_exported(text, "MyBackboneMutant", torch.load(tmp_path / "net.pt", weights_only=True)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))  # build replays the genome: same weights as the exported file
    code, _, stderr = cli("export", tmp_path / "g.json", "-o", tmp_path / "n2.py", "-k", "width=8")
    assert code == 2 and "genome" in stderr


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return 3 * x * grad  # deliberately not the derivative: a trace of forward would lose this


class WithCustomAutograd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Square.apply(self.conv(x))


def test_a_custom_autograd_function_is_refused_not_inlined() -> None:
    model = nn.Sequential(nn.ReLU(), WithCustomAutograd())
    with pytest.raises(NotExportableError, match=r"custom autograd function .*_Square in module '1'"):
        export_model(model, input_size=(3, 4, 4))
    x = torch.ones(2, requires_grad=True)
    _Square.apply(x).sum().backward()  # the patch is gone after the export
    assert torch.equal(x.grad, torch.full((2,), 3.0))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + y


def test_two_inputs_are_exported_but_not_checked() -> None:
    res = export_model(TwoInputs(), input_size=(3, 4, 4))
    assert "def forward(self, x, y):" in res.source and not res.checked
    assert any("2 inputs" in n for n in res.notes)


def test_a_class_name_that_clashes_with_the_file_is_refused() -> None:
    from timm.layers import DropPath

    model = nn.Sequential(nn.Conv2d(3, 3, 1), DropPath(0.1))
    with pytest.raises(NotExportableError, match="clashes"):
        export_model(model, input_size=(3, 4, 4), class_name="DropPath")
    with pytest.raises(NotExportableError, match="clashes"):
        export_model(model, input_size=(3, 4, 4), class_name="torch")
