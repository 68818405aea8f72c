"""``./dev`` and the bench default keep the caller's relative paths (issue 14, item 9)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zenfx.cli.common import DEFAULT_TRUTH, resolve_truth

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "dev"

NET = """
import torch
from torch import nn


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))
"""


def _dev_ready() -> bool:
    """./dev reinstalls when pyproject.toml/constraints.txt changed: never let a test trigger that."""
    venv = Path(os.environ.get("ZENFX_VENV", REPO / ".venv"))
    stamp = venv / ".zenfx-install-stamp"
    want = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + (REPO / "constraints.txt").read_bytes()).hexdigest()
    return stamp.is_file() and stamp.read_text().strip() == want and Path(sys.executable).parent == venv / "bin"


needs_dev = pytest.mark.skipif(not _dev_ready(), reason="./dev would (re)install the venv")


def _dev(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZENFX_SKIP_LINT": "1"}  # `dev test` lints the repo first: not this test's subject
    return subprocess.run([str(DEV), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@needs_dev
def test_dev_zenfx_resolves_paths_against_the_callers_directory(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "x.py").write_text(NET)
    proc = _dev(tmp_path, "zenfx", "inspect", "nets/x.py:Plain", "-r", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output_shape"] == [1, 8, 16, 16]
    proc = _dev(tmp_path, "python", "-c", "import os; print(os.getcwd())")
    assert Path(proc.stdout.strip()).resolve() == tmp_path.resolve()


@needs_dev
def test_dev_test_takes_paths_relative_to_the_caller(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_tiny.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    proc = _dev(tmp_path, "test", "t/test_tiny.py", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_bench_truth_default_resolves_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("ZENFX_TRUTH", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    beside = REPO.parent / "shared" / "data"
    got = resolve_truth(DEFAULT_TRUTH)
    if beside.exists():
        assert Path(got) == beside
    else:
        assert got == DEFAULT_TRUTH  # the error then names the path the user knows
    assert resolve_truth("my/truth.csv") == "my/truth.csv"  # what the user typed stays theirs
    monkeypatch.setenv("ZENFX_TRUTH", str(tmp_path))
    assert resolve_truth(DEFAULT_TRUTH) == str(tmp_path)
