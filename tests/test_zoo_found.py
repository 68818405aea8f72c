"""Found networks: a search run becomes a ``zoo:NAME`` entry that rebuilds the same network."""

from __future__ import annotations

import json
import random

import pytest
import torch

import zenfx
from zenfx.errors import UsageError
from zenfx.genome import Genome
from zenfx.zoo import registry
from zenfx.zoo.found import entry_from_run, main


@pytest.fixture
def found_dir(tmp_path, monkeypatch):
    d = tmp_path / "found"
    monkeypatch.setattr(registry, "FOUND_DIR", d)
    registry.refresh()
    yield d
    registry.refresh()


def _fake_run(tmp_path, genome: Genome):
    run = tmp_path / "run"
    run.mkdir()
    summary = {"format": "zenfx-search-summary", "proxy": "zen", "budgets": {"params": 200000},
               "seed": {"score": 15.1, "figures": {"params": 155026}},
               "best": {"score": 16.0, "figures": {"params": 170000}, "genome": genome.to_dict()},
               "counters": {"proposed": 10}, "elapsed_s": 12.5, "worker_cpu_s": 20.0, "main_cpu_s": 1.0,
               "stopped": "candidates"}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.json").write_text(json.dumps({"batch_size": 64, "population": 8, "seed": 0}))
    return run


def test_a_search_result_becomes_a_zoo_entry_that_rebuilds_it(tmp_path, found_dir, cli, one_thread):
    seed = Genome("zoo:cifar_resnet_basic", {}, (3, 32, 32))
    genome = zenfx.mutate(seed, random.Random(3), edits=2)
    run = _fake_run(tmp_path, genome)
    path = entry_from_run(run, "tiny_found", command="zenfx search zoo:cifar_resnet_basic --candidates 10",
                          date="2026-11-30T02:00:00Z")
    assert path == found_dir / "tiny_found.json"
    entry = registry.get_entry("tiny_found")
    assert entry.kind == "found" and entry.input_size == (3, 32, 32)
    assert entry.meta["found"]["command"].startswith("zenfx search") and entry.meta["found"]["cpu_s"] == 21.0
    assert entry.meta["edits"] == 2

    lm = zenfx.resolve_model("zoo:tiny_found")
    assert lm.source == "zoo" and lm.default_input_size == (3, 32, 32)
    want = zenfx.build(genome).state_dict()
    got = lm.module.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert zenfx.resolve_model("zoo:tiny_found", device="meta").module is not None
    assert zenfx.convert_model("zoo:tiny_found", device="meta").verdict == "convertible"

    code, out, _ = cli("zoo", "--kind", "found", "--json")
    rows = json.loads(out)["entries"]
    assert code == 0 and [r["name"] for r in rows] == ["tiny_found"]
    assert rows[0]["figures"]["zen"] == 16.0 and rows[0]["figures"]["zen_command"].startswith("zenfx search")
    with pytest.raises(UsageError, match="fixed genome"):
        zenfx.load_model("zoo:tiny_found", num_classes=100)


def test_found_entry_refuses_bad_names_and_empty_runs(tmp_path, found_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"best": None}))
    with pytest.raises(UsageError, match="no best genome"):
        entry_from_run(run, "empty", command="x")
    with pytest.raises(UsageError, match="lower-case"):
        entry_from_run(run, "Bad-Name", command="x")
    assert main([str(tmp_path / "nowhere"), "x", "--command", "c"]) == 2


@pytest.mark.parametrize("name", [e.name for e in registry.list_entries(kind="found")])
def test_every_found_entry_rebuilds_with_its_recorded_figures(name):
    """The committed found nets (zoo/found/): the genome replays to the recorded params and MACs."""
    entry = registry.get_entry(name)
    found = entry.meta["found"]
    assert found["command"].startswith("./dev zenfx search ") and found["proxy"] == "zen"
    assert found["score"] > found["seed_score"] and found["elapsed_s"] > 0 and found["cpu_s"] > 0
    model = zenfx.resolve_model(f"zoo:{name}", device="meta").module
    assert sum(p.numel() for p in model.parameters()) == found["figures"]["params"]
    assert zenfx.count_macs(model, entry.input_size) == found["figures"]["macs"]
    for figure in ("params", "macs", "depth"):  # every budget the search had, kept
        if found["budgets"].get(figure) is not None:
            assert found["figures"][figure] <= found["budgets"][figure], figure
