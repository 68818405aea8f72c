"""Shared fixtures. Tests build their own small data; nothing is downloaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Two cores in CI: keep intra-op threads from oversubscribing when xdist or helpers run beside us.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a shared machine every parallel region
    waits for a busy core: one thread keeps such tests fast under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def zenfx_exe() -> str:
    """The installed console script of the interpreter running the tests."""
    exe = Path(sys.executable).with_name("zenfx")
    if not exe.exists():
        pytest.skip("zenfx console script not installed next to the interpreter")
    return str(exe)


@pytest.fixture
def cli():
    """Invoke the typer app in-process: returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from zenfx.cli.app import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke
