"""`zenfx space` and `zenfx mutate` end to end (subprocess-free: typer's CliRunner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import zenfx
from cli.app import app

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def test_space_json_and_tables():
    res = runner.invoke(app, ["space", "examples/my_backbone.py:build", "-r", "32", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["counts"]["groups"] == {"free": 5, "frozen": 2}
    assert doc["blocks"][0]["path"] == "stages" and doc["probe"]["ran"]
    res = runner.invoke(app, ["space", "examples/my_backbone.py:build", "-r", "32"])
    assert res.exit_code == 0
    assert "stages.0.se.fc1" in res.stdout and "squeeze" in res.stdout and "size of the space 10^" in res.stdout


def test_mutate_writes_a_genome_that_every_command_reads(tmp_path):
    out = tmp_path / "g.json"
    mine = ["examples/my_backbone.py:build", "-r", "32"]
    res = runner.invoke(app, ["mutate", *mine, "--edits", "3", "--seed", "1", "--out", str(out),
                              "--no-score", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["new_edits"]) == 3 and doc["seed"]["params"] == 39482 and doc["seed"]["vcnn_depth"] == 5
    assert doc["mutant"]["params"] != doc["seed"]["params"] and doc["mutant"]["macs"] > 0
    again = runner.invoke(app, ["mutate", *mine, "--edits", "3", "--seed", "1", "--no-score", "--json"])
    assert json.loads(again.stdout)["genome"] == doc["genome"]  # same seed, same genome
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["params"] == doc["mutant"]["params"]
    res = runner.invoke(app, ["space", str(out), "--json"])
    assert res.exit_code == 0
    res = runner.invoke(app, ["mutate", str(out), "--kinds", "width", "--width-choices", "stage=8,16,...,64",
                              "--no-score", "--json"])
    assert res.exit_code == 0, res.output
    grown = json.loads(res.stdout)
    assert len(grown["genome"]["edits"]) == 4 and grown["new_edits"][0]["kind"] == "width"


def test_bad_genomes_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "zenfx-genome", "version": 1')
    res = runner.invoke(app, ["score", str(bad)])
    assert res.exit_code == 2 and "not valid JSON" in res.output
    doc = {"format": "zenfx-genome", "version": 1, "zenfx_version": zenfx.__version__, "seed": "zoo:cifar_resnet20",
           "kwargs": {}, "input_size": [3, 32, 32], "init_seed": 0,
           "edits": [{"kind": "width", "target": "fc", "value": 16}]}
    bad.write_text(json.dumps(doc))
    res = runner.invoke(app, ["inspect", str(bad)])
    assert res.exit_code == 2 and "group 'fc' is frozen: model output" in res.output
    assert res.output.strip().count("\n") == 0
    res = runner.invoke(app, ["mutate", "zoo:cifar_resnet20", "--kinds", "colour"])
    assert res.exit_code == 2 and "edit kinds must be among" in res.output
