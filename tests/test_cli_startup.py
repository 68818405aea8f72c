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
from pathlib import Path

import pytest
import typer

HEAVY = ("torch", "torchvision", "timm", "numpy", "scipy", "matplotlib", "ray", "fvcore", "networkx")

PROBE = """
import contextlib, io, sys
from zenfx.cli.app import main
for path in {paths!r}:
    sys.argv = ["zenfx", *path, "--help"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main()
        except SystemExit:
            pass
    if "Usage" not in buf.getvalue():
        print("NOHELP=" + " ".join(path), file=sys.stderr)
    heavy = [m for m in {heavy!r} if m in sys.modules]
    if heavy:  # the first command that imports them; later ones would be contaminated
        print("HEAVY=" + (" ".join(path) or "(root)") + ": " + ",".join(heavy), file=sys.stderr)
        break
print("DONE", file=sys.stderr)
"""


def _command_paths() -> list[list[str]]:
    """Every command and sub-command the app registers (other helpers' new ones included)."""
    from zenfx.cli.app import build_app

    paths: list[list[str]] = [[]]

    def walk(cmd: object, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(build_app()), [])
    return paths


def test_help_of_every_command_imports_no_torch():
    """One process runs every --help in turn (fast) and names the first command that pulls in torch."""
    paths = _command_paths()
    assert ["score"] in paths and ["inspect"] in paths and len(paths) > 6
    proc = subprocess.run([sys.executable, "-c", PROBE.format(paths=paths, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=300)
    assert "DONE" in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert not [x for x in lines if x.startswith("NOHELP=")], proc.stderr
    heavy = [x for x in lines if x.startswith("HEAVY=")]
    assert not heavy, f"--help imports heavy modules (import them inside the command function): {heavy}"


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

    assert set(zenfx._LAZY) <= set(zenfx.__all__)  # a lazy name is a public name
    for name in zenfx.__all__:
        assert getattr(zenfx, name) is not None, name


def _sigint_as_in_a_terminal() -> None:
    """Child pre-exec: SIGINT at its default, as a terminal gives it. A suite started in the background
    (``nohup ./dev test &``) inherits SIGINT ignored, and a process that starts with SIGINT ignored
    rightly keeps ignoring it, so without this the Ctrl-C tests would only test the launcher."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_until_loaded(proc: subprocess.Popen, needle: str, timeout: float = 120) -> None:
    """Wait until the process has mapped a shared library whose path contains ``needle``: a phase
    marker that holds under any machine load, unlike a fixed delay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"finished before Ctrl-C: {proc.returncode} {proc.stderr.read()}")
        try:
            if needle in Path(f"/proc/{proc.pid}/maps").read_text():
                return
        except OSError:
            pass
        time.sleep(0.01)
    pytest.fail(f"{needle} never loaded")


def _ctrl_c(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C; if the process is still there 30 s later (a library swallowed the interrupt, or a
    clean-up hangs), Ctrl-C again, which cli/app.py turns into an immediate exit 130."""
    os.kill(proc.pid, signal.SIGINT)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=30)


# _json: main() is importing typer/rich and the command modules; libtorch: the command is importing
# torch (the heavy start-up import); libtorch + 4 s: building or scoring the model.
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("marker,after", [("_json.cpython", 0.0), ("libtorch", 0.0),
                                          pytest.param("libtorch", 4.0, marks=pytest.mark.slow)])
def test_ctrl_c_exits_130_without_traceback(zenfx_exe, marker, after):
    proc = subprocess.Popen([zenfx_exe, "score", "torchvision.models.resnet50", "-n", "100", "-b", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    _wait_until_loaded(proc, marker)
    time.sleep(after)
    out, err = _ctrl_c(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted" in err


@pytest.mark.parametrize("after", [0.0, 2.0])  # 0: inside torch's import (deferred Ctrl-C), 2: later
def test_ctrl_c_with_json_prints_the_error_document(zenfx_exe, after):
    proc = subprocess.Popen([zenfx_exe, "score", "torchvision.models.resnet50", "-n", "100", "-b", "4", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    _wait_until_loaded(proc, "libtorch")
    time.sleep(after)
    out, err = _ctrl_c(proc)
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


def _descendants(pid: int) -> set[int]:
    """Every live process under ``pid`` (workers, a forkserver and its children), from /proc."""
    parents: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = [c for c, par in parents.items() if par == parent]
        out.update(kids)
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigterm_to_a_search_stops_its_workers_and_exits_143(zenfx_exe, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([zenfx_exe, "search", "zoo:cifar_resnet_basic", "-r", "32", "-b", "8", "--candidates",
                             "100000", "--workers", "2", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (out / "checkpoint.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # the seed is scored on a worker: workers are up once the first checkpoint exists
    kids = _descendants(proc.pid)
    assert kids, "no worker processes found"
    os.kill(proc.pid, signal.SIGTERM)  # the driver alone, as `kill PID` or a batch system does
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated" in stderr
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
