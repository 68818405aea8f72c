"""Every benchmark's documented command runs as written (issue 22 item 13): each invocation in a
script's docstring is run in its smallest form -- the documented arguments, then flags that shrink
the work (argparse lets a later flag override an earlier one). One cheap case runs in the fast
suite; the rest are slow."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

# Flags appended to every documented invocation of a script so that it finishes in seconds.
SMALLEST = {
    "bench_audit.py": ["--limit", "1"],
    "bench_executor.py": ["--only", "overhead", "--tasks", "4", "--repeat", "1"],
    "bench_latency_calibration.py": ["--limit", "3", "--rounds", "1", "--min-run-time", "0.01"],
    "bench_latency_predictor.py": ["--limit", "1", "--resolution", "64", "--min-run-time", "0.01",
                                   "--op-min-run-time", "0.001"],
    "bench_mutate.py": ["--models", "cifar", "--candidates", "1", "--batch", "2"],
    "bench_score.py": ["--resolution", "32", "--batch", "2", "--runs", "1", "--repeat", "1"],
    "bench_search.py": ["--candidates", "4", "--population", "4", "--round", "4"],
}


def documented() -> list[tuple[str, list[str]]]:
    """(script, arguments) of every ``./dev python benchmarks/X.py ...`` line in the docstrings."""
    found = []
    for path in sorted(BENCH.glob("*.py")):
        for line in path.read_text().splitlines():
            m = re.search(r"\./dev python benchmarks/(\w+\.py)(.*)", line)
            if not m or m.group(1) != path.name:
                continue
            args = shlex.split(m.group(2).split("#")[0].replace("[", " ").replace("]", " "))
            found.append((path.name, args))
    return found


def _case_id(case: tuple[str, list[str]]) -> str:
    return case[0].removesuffix(".py") + ("-" + "_".join(a.lstrip("-") for a in case[1]) if case[1] else "")


def _skip_reason(script: str, args: list[str]) -> str | None:
    if script not in SMALLEST:
        return f"{script} needs a run folder"
    if "cuda" in args:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA here"
    if script == "bench_executor.py" and importlib.util.find_spec("ray") is None:
        return "ray is not installed"
    return None


def _run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    args = [str(tmp_path / Path(a).name) if a.endswith(".json") else a for a in args]  # outputs to tmp
    cmd = [sys.executable, str(BENCH / script), *args, *SMALLEST[script]]
    import os

    env = {**os.environ, "ZENFX_CACHE_DIR": str(tmp_path / "cache")}  # no operator table written to the user's
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)


CASES = documented()


def test_every_benchmark_documents_at_least_one_command():
    scripts = {p.name for p in BENCH.glob("*.py")}
    assert scripts == {s for s, _ in CASES}
    assert set(SMALLEST) <= scripts


def test_bench_score_documented_models_resolve(tmp_path):
    """The docstring's single-model command, in its smallest form (it died on 'resnet18 is both a
    torchvision and a timm model')."""
    case = next((s, a) for s, a in CASES if s == "bench_score.py" and "--models" in a)
    done = _run(*case, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resnet18" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_documented_benchmark_command_runs(case, tmp_path):
    why = _skip_reason(*case)
    if why:
        pytest.skip(why)
    done = _run(*case, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
