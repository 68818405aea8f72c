"""Start-up a person feels (issue 14, items 6 and 10): ``zenfx --help`` and ``zenfx COMMAND --help``
import no torch (they took ~5 s when they did), and Ctrl-C at any moment, start-up imports
included, exits 130 without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import click
import pytest
import typer

HEAVY = ("torch", "torchvision", "timm", "numpy", "scipy", "matplotlib", "ray", "fvcore", "networkx")

PROBE = """
import sys
from zenfx.cli.app import main
sys.argv = ["zenfx", *{args!r}]
try:
    main()
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def _command_paths() -> list[list[str]]:
    """Every command and sub-command the app registers (other helpers' new ones included)."""
    from zenfx.cli.app import build_app

    paths: list[list[str]] = [[]]

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(build_app()), [])
    return paths


def _heavy_after(args: list[str]) -> tuple[list[str], subprocess.CompletedProcess]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120)
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, proc.stderr
    return [m for m in line[-1][len("HEAVY="):].split(",") if m], proc


def test_help_of_every_command_imports_no_torch():
    paths = _command_paths()
    assert ["score"] in paths and ["inspect"] in paths and len(paths) > 6
    slow = {}
    for path in paths:
        heavy, proc = _heavy_after([*path, "--help"])
        assert "Usage" in proc.stdout, (path, proc.stderr)
        if heavy:
            slow[" ".join(path) or "(root)"] = heavy
    assert not slow, f"--help imports heavy modules (import them inside the command function): {slow}"


def test_help_says_exit_codes(zenfx_exe):
    proc = subprocess.run([zenfx_exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "130 interrupted" in " ".join(proc.stdout.split())  # whatever the wrapping


def test_cli_defaults_match_the_library():
    """The CLI repeats a few library defaults so that --help needs no torch; they must agree."""
    from zenfx.cli import cmd_report, cmd_score
    from zenfx.cost.report import DEFAULT_DEPTH
    from zenfx.scoring import DEFAULT_BATCH_SIZE, DEFAULT_REPEAT

    assert (cmd_score.DEFAULT_BATCH_SIZE, cmd_score.DEFAULT_REPEAT) == (DEFAULT_BATCH_SIZE, DEFAULT_REPEAT)
    assert cmd_report.DEFAULT_DEPTH == DEFAULT_DEPTH


def test_lazy_package_exports_everything_it_lists():
    import zenfx

    for name in zenfx.__all__:
        assert getattr(zenfx, name) is not None, name


@pytest.mark.parametrize("delay", [0.3, 1.0, 3.0])  # typer/rich import, torch import, scoring
def test_ctrl_c_exits_130_without_traceback(zenfx_exe, delay):
    proc = subprocess.Popen([zenfx_exe, "score", "torchvision.models.resnet50", "-n", "100", "-b", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.fail(f"finished before Ctrl-C: {proc.returncode} {proc.stderr.read()}")
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted" in err


def test_ctrl_c_with_json_prints_the_error_document(zenfx_exe):
    proc = subprocess.Popen([zenfx_exe, "score", "torchvision.models.resnet50", "-n", "100", "-b", "4", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert json.loads(out) == {"error": "interrupted", "exit_code": 130}


def test_click_usage_errors_under_json_print_the_document(zenfx_exe):
    proc = subprocess.run([zenfx_exe, "score", "--json"], capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["exit_code"] == 2 and "model" in doc["error"].lower()


def test_cpu_latency_run_has_no_cuda_runtime_warning(zenfx_exe, tmp_path):
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    proc = subprocess.run([zenfx_exe, "report", f"{net}:build", "-r", "16", "--latency", "--threads", "1",
                           "--min-run-time", "0.05", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "No CUDA runtime" not in proc.stderr and "latency" in proc.stdout
