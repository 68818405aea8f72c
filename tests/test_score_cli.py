"""``zenfx score`` end to end: JSON fields, the table, exit codes 2 and 5, real models."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PLAIN_NETS = textwrap.dedent(
    """
    from torch import nn

    def _stack(depth, width, bn):
        layers, cin = [], 3
        for _ in range(depth):
            layers.append(nn.Conv2d(cin, width, 3, padding=1, bias=False))
            if bn:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            cin = width
        return nn.Sequential(*layers)

    def plain(depth=3, width=8):
        return _stack(depth, width, True)

    def deep_bn_free(depth=40, width=32):
        return _stack(depth, width, False)
    """
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def netfile(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("nets") / "plain_nets.py"
    path.write_text(PLAIN_NETS)
    return str(path)


def test_json_fields(cli, netfile):
    code, out, err = cli("score", f"{netfile}:plain", "--resolution", "16", "--batch-size", "4", "--repeat", "3",
                         "--seed", "3", "--proxy", "zen,phi,params", "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in ("model", "resolution", "batch_size", "repeat", "seed", "bn_stat", "scores", "conversion"):
        assert key in d
    assert (d["resolution"], d["batch_size"], d["repeat"], d["seed"], d["bn_stat"]) == (16, 4, 3, 3, "official")
    assert set(d["scores"]) == {"zen", "phi", "params"}
    for s in d["scores"].values():
        assert {"value", "ci95", "seconds"} <= set(s)
        assert isinstance(s["value"], float)
    assert d["scores"]["zen"]["ci95"] > 0
    assert d["conversion"]["verdict"]


def test_same_seed_same_number_and_batch_mode(cli, netfile):
    args = ("score", f"{netfile}:plain", "-r", "16", "-b", "4", "-n", "2", "--json")
    a = json.loads(cli(*args)[1])["scores"]["zen"]["values"]
    b = json.loads(cli(*args)[1])["scores"]["zen"]["values"]
    assert a == b
    batch = json.loads(cli(*args, "--bn-stat", "batch")[1])
    assert batch["bn_stat"] == "batch" and batch["scores"]["zen"]["value"] > a[0]


def test_table_shows_interval_time_and_conversion(cli, netfile):
    code, out, _ = cli("score", f"{netfile}:plain", "-r", "16", "-b", "4", "-n", "2")
    assert code == 0
    assert "zen" in out and "±" in out and "conversion:" in out and "time:" in out


def test_overflow_exits_5_with_hint_and_no_nan(cli, netfile):
    code, out, err = cli("score", f"{netfile}:deep_bn_free", "-r", "8", "-b", "2", "-n", "1")
    assert code == 5
    assert "overflow" in err and "nan" not in out.lower()
    code, out, err = cli("score", f"{netfile}:deep_bn_free", "-r", "8", "-b", "2", "-n", "1",
                         "--dtype", "bfloat16", "--json")
    assert code == 5 and "float32" in err
    assert json.loads(out) == {"error": json.loads(out)["error"], "exit_code": 5}  # the --json error document


@pytest.mark.parametrize("bad", [
    ("--bn-stat", "running"), ("--device", "cuda:99"), ("--dtype", "float16"), ("--dtype", "fp8"),
    ("--repeat", "0"), ("--batch-size", "0"), ("--mixup-gamma", "-1"), ("--proxy", "zenn"),
    ("--graph", "both"), ("--resolution", "-3"),
])
def test_bad_options_exit_2(cli, netfile, bad):
    code, _, err = cli("score", f"{netfile}:plain", "-r", "16", "-b", "2", "-n", "1", *bad)
    assert code == 2, err
    assert "error:" in err


def test_unknown_model_exits_2(cli):
    code, _, err = cli("score", "resnet5O")
    assert code == 2 and "did you mean" in err


def _vcnn_available() -> bool:
    try:
        from zenfx.vcnn import to_vcnn  # noqa: F401
    except ImportError:
        return False
    return True


needs_vcnn = pytest.mark.skipif(not _vcnn_available(), reason="zenfx.vcnn.to_vcnn not in this build yet")


@needs_vcnn
def test_resnet18_small_resolution(cli):
    code, out, err = cli("score", "torchvision.models.resnet18", "-r", "32", "-b", "4", "-n", "2",
                         "--proxy", "zen,params", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["model"] == "resnet18" and d["conversion"]["verdict"]
    assert d["conversion"]["bn_count"] == 17  # the shortcut projections' BN go with the shortcuts
    assert 20 < d["scores"]["zen"]["value"] < 200
    assert d["scores"]["params"]["value"] == 11689512


@needs_vcnn
def test_timm_and_user_file(cli):
    code, out, err = cli("score", "timm:resnet18", "-r", "32", "-b", "2", "-n", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["source"] == "timm"
    code, out, err = cli("score", str(REPO / "examples" / "my_backbone.py") + ":build", "-r", "32", "-b", "2",
                         "-n", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["conversion"]["changes"]


@needs_vcnn
@pytest.mark.slow
def test_resnet50_at_224_from_the_readme_command():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([str(REPO / "dev"), "zenfx", "score", "torchvision.models.resnet50", "--json"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["resolution"] == 224 and d["batch_size"] == 16 and d["repeat"] == 4
    assert d["bn_stat"] == "official" and d["scores"]["zen"]["ci95"] is not None
