"""The CLI end to end: in-process through typer's runner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

import zenfx


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip().startswith(f"zenfx {zenfx.__version__}")


def test_no_arguments_shows_help(cli):
    code, out, err = cli()
    assert "inspect" in out + err and "Exit codes" in out + err


def test_inspect_json_is_machine_readable(cli):
    code, out, _ = cli("inspect", "torchvision.models.resnet18", "--json", "-r", "64")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "resnet18" and data["tracer"] == "symbolic_trace"
    assert data["input_size"] == [3, 64, 64] and data["residual_adds"] == 8
    assert data["output_shape"] == [1, 1000]


def test_inspect_table_and_kwargs(cli):
    code, out, _ = cli("inspect", "torchvision:mobilenet_v2", "-k", "num_classes=10", "--input-size", "3,32,32")
    assert code == 0
    assert "symbolic_trace" in out and "(1, 10)" in out


@pytest.mark.parametrize("args,needle", [
    (["inspect", "resnet50"], "torchvision:resnet50"),
    (["inspect", "resnt18"], "did you mean"),
    (["inspect", "timm:resnet18", "-k", "pretrained=True"], "never downloads weights"),
    (["inspect", "torchvision.models.resnet18", "--input-size", "3,224"], "C,H,W"),
    (["inspect", "torchvision.models.alexnet", "-r", "32"], "MaxPool2d"),
])
def test_usage_errors_exit_2_with_one_line(cli, args, needle):
    code, out, err = cli(*args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and err.strip().count("\n") == 0


def test_untraceable_exits_3(cli, tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(
        """
        from torch import nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)
            def forward(self, x):
                for _ in range(int(x.shape[0] > 0 and x.mean() > 0)):
                    x = self.conv(x)
                return x
        """
    ))
    code, _, err = cli("inspect", f"{path}:Net")
    assert code == 3
    assert "cannot trace Net" in err and "net.py:8" in err


def test_real_subprocess_json_stdout_and_clean_stderr(zenfx_exe):
    proc = subprocess.run([zenfx_exe, "inspect", "timm:tf_efficientnet_b0", "--json", "-r", "64"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["tracer"] == "leaf_aware" and data["source"] == "timm"


def test_real_subprocess_unknown_model_exit_code(zenfx_exe):
    proc = subprocess.run([zenfx_exe, "inspect", "definitely_not_a_model"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "unknown model" in proc.stderr and "Traceback" not in proc.stderr
