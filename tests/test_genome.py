"""Genome JSON: round trip, atomic save, and one-line exit-2 errors for bad files and bad edits."""

from __future__ import annotations

import json

import pytest

from zenfx.errors import UsageError
from zenfx.genome import Edit, Genome, GenomeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "cache"))


def _genome() -> Genome:
    return Genome("examples/my_backbone.py:build", {"width": 16}, (3, 32, 32), 7,
                  [Edit("width", "stem.0", 24), Edit("kernel", "stages.0.body.0", 5), Edit("depth", "stages", 3)])


def test_round_trip_and_atomic_save(tmp_path):
    g = _genome()
    path = g.save(tmp_path / "sub" / "g.json")
    data = json.loads(path.read_text())
    assert data["format"] == "zenfx-genome" and data["version"] == 1
    assert Genome.load(path) == g
    assert not [p for p in path.parent.iterdir() if p.name != "g.json"]  # no temp file left
    child = g.child(Edit("width", "stem.0", 32))
    assert len(child.edits) == 4 and len(g.edits) == 3


@pytest.mark.parametrize("mutate_doc, message", [
    (lambda d: d.update(zenfx_version="0.0.1"), "written by zenfx '0.0.1'"),
    (lambda d: d.update(format="other"), "not a zenfx genome"),
    (lambda d: d.update(input_size=[3, 32]), "input_size"),
    (lambda d: d["edits"].append({"kind": "colour", "target": "x", "value": 1}), "edit kind 'colour'"),
    (lambda d: d["edits"].append({"kind": "width", "target": "x", "value": -4}), "positive integer"),
    (lambda d: d.update(surprise=1), "unknown genome field"),
])
def test_malformed_documents_are_usage_errors(tmp_path, mutate_doc, message):
    d = _genome().to_dict()
    mutate_doc(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(UsageError) as exc:
        Genome.load(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.exit_code == 2


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(_genome().to_json()[:40])
    with pytest.raises(GenomeError, match="not valid JSON"):
        Genome.load(path)
    with pytest.raises(GenomeError, match="does not exist"):
        Genome.load(tmp_path / "nope.json")
