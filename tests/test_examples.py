"""Every example runs end to end in its fast mode (ZENFX_EXAMPLE_FAST=1) and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA

EXAMPLES = REPO / "examples"


def run_example(name: str, *args: str, cwd=None) -> str:
    env = {**os.environ, "ZENFX_EXAMPLE_FAST": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=cwd or REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_every_example_has_a_test():
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"my_backbone.py"}  # a model file, used by the others
    tested = set(re.findall(r'run_example\("([a-z0-9_]+\.py)"', (REPO / "tests" / "test_examples.py").read_text()))
    assert scripts == tested


def test_score_resnet50(tmp_path):
    out = run_example("score_resnet50.py", cwd=tmp_path)  # from another directory: no relative paths
    zen = float(re.search(r"Zen-Score\s+: ([0-9.]+)", out).group(1))
    assert zen > 0 and "convertible, 49 BN layers kept" in out and "resnet50 at (3, 64, 64)" in out


def test_cost_report():
    out = run_example("cost_report.py")
    names = ("cifar_resnet20", "zennet_cifar_05m", "my_backbone")
    lines = [line for line in out.splitlines() if line.startswith(names)]
    assert len(lines) == 3
    assert "0.27M" in lines[0] and "ms" in lines[0]  # ResNet-20: 272,474 params, a measured latency


@pytest.mark.slow  # ~10 s of CPU (vit_tiny, densenet121 traced): the fast suite keeps the cheaper three
def test_audit_timm():
    out = run_example("audit_timm.py")
    assert re.search(r"^convertible\s+resnet18$", out, re.M)
    assert re.search(r"^not_convertible\s+densenet121\s+<- branches merged by concat", out, re.M)
    assert "verdicts: {" in out


@pytest.mark.slow  # ~10 s of CPU: six networks scored with two proxies
@pytest.mark.skipif(not (SHARED_DATA / "natsbench_sss.csv").is_file(), reason="NATS-Bench-SSS truth file absent")
def test_compare_proxies_nats():
    out = run_example("compare_proxies_nats.py", SHARED_DATA)
    assert len(re.findall(r"^\s+\d+:\d+:\d+:\d+:\d+\s+acc", out, re.M)) == 6
    taus = dict(re.findall(r"^\s+(\w+)\s+Kendall tau ([+-][0-9.]+)", out, re.M))
    assert set(taus) == {"zen", "params"} and all(-1 <= float(t) <= 1 for t in taus.values())


def test_evolve_my_backbone(tmp_path):
    out = run_example("evolve_my_backbone.py", tmp_path)
    seed = float(re.search(r"^seed: Zen ([0-9.]+)", out, re.M).group(1))
    best = float(re.search(r"^best: Zen ([0-9.]+), (\d+) params", out, re.M).group(1))
    params = int(re.search(r"^best: Zen [0-9.]+, (\d+) params", out, re.M).group(1))
    assert best >= seed and params <= 100_000  # never over the budget
    exported = tmp_path / "my_evolved_net.py"
    assert exported.is_file() and (tmp_path / "my_evolved_net.pt").is_file()
    assert "import zenfx" not in exported.read_text()  # standalone: torch only
    assert re.search(r"one epoch on random data: loss [0-9.]+ -> [0-9.]+ over 4 steps", out)
