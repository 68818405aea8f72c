"""``zenfx convert`` and ``zenfx audit`` end to end through typer's runner."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest


def test_convert_json(cli, tmp_path):
    code_path = tmp_path / "vcnn_resnet18.py"
    code, out, _ = cli("convert", "torchvision:resnet18", "--json", "-r", "64", "--code", code_path)
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "convertible" and data["counts"]["residual"] == 8
    assert data["output_shape"] == [1, 512, 2, 2] and data["bn_count"] == 17
    assert all({"pass", "node", "kind", "kept", "dropped", "detail"} <= set(c) for c in data["changes"])
    src = code_path.read_text()
    ns: dict = {}
    exec(compile(src, str(code_path), "exec"), ns)  # the written source defines a working module
    import torch

    assert ns["VCNN"]()(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_convert_table(cli):
    code, out, _ = cli("convert", "torchvision:mobilenet_v3_large", "-r", "64")
    assert code == 0
    assert "convertible" in out and "gate" in out and "activation" in out


def test_convert_not_convertible_exits_4_with_concat_reason(cli):
    code, out, err = cli("convert", "torchvision:densenet121", "-r", "64")
    assert code == 4
    assert "branches merged by concat" in out + err
    code, out, _ = cli("convert", "torchvision:densenet121", "-r", "64", "--json")
    assert code == 4
    data = json.loads(out)
    assert data["verdict"] == "not_convertible" and data["reasons"][0].startswith("branches merged by concat")


def test_convert_untraceable_exits_3(cli, tmp_path):
    f = tmp_path / "dyn.py"
    f.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Dyn(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                return self.conv(x) if x.sum() > 0 else x

        def build():
            return Dyn()
    """))
    code, _, err = cli("convert", f"{f}:build", "-r", "32")
    assert code == 3 and "trace" in err.lower()


def test_audit_csv_resume_and_json(cli, tmp_path):
    path = tmp_path / "audit.csv"
    code, out, _ = cli("audit", "torchvision:resnet18", "torchvision:densenet121", "--jobs", "1", "--csv", path)
    assert code == 0 and "summary" in out
    rows = list(csv.DictReader(path.open()))
    assert {r["name"]: r["verdict"] for r in rows} == {"resnet18": "convertible", "densenet121": "not_convertible"}
    assert rows[0]["tracer"] == "symbolic_trace" and int(rows[0]["params"]) > 0
    # resume: the two finished rows are skipped, only the new one runs
    code, out, _ = cli("audit", "torchvision:resnet18", "torchvision:densenet121", "torchvision:mobilenet_v2",
                       "--jobs", "0", "--csv", path, "--resume", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["skipped"] == 2 and [r["name"] for r in data["rows"]] == ["mobilenet_v2"]
    assert data["summary"]["by_verdict"]["convertible"] == 1
    assert len(list(csv.DictReader(path.open()))) == 3


def test_audit_survives_crash_and_hang(cli, tmp_path):
    f = tmp_path / "bad.py"
    f.write_text(textwrap.dedent("""
        import time
        from torch import nn

        def hang():
            time.sleep(60)
            return nn.Conv2d(3, 3, 1)

        def crash():
            raise RuntimeError("boom")
    """))
    code, out, _ = cli("audit", f"{f}:hang", f"{f}:crash", "torchvision:resnet18", "--jobs", "2",
                       "--timeout", "4", "--json")
    assert code == 0
    rows = {r["name"].rsplit(":", 1)[-1]: r for r in json.loads(out)["rows"]}
    assert rows["hang"]["verdict"] == "error" and "timeout" in rows["hang"]["error"]
    assert rows["crash"]["verdict"] == "error" and "boom" in rows["crash"]["error"]
    assert rows["resnet18"]["verdict"] == "convertible"


@pytest.mark.slow
def test_audit_torchvision_filter(cli):
    code, out, _ = cli("audit", "torchvision", "--filter", "resnet*", "--jobs", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["summary"]["by_verdict"]["convertible"] == data["summary"]["models"] == 5
