"""A user's own backbone FILE is the same model in every process, folder and machine (issue 18).

Zoo and torchvision seeds hide identity bugs (their classes live in importable modules), so every
test here starts from a copy of ``examples/my_backbone.py`` in a temporary folder and runs the CLI
in fresh processes: under other ``PYTHONHASHSEED`` values, from other working directories, killed
and resumed, and with the seed file moved, edited or gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from search_helpers import kill_search_mid_run

from zenfx.errors import EXIT_SEARCH_FAILED, EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
BACKBONE = REPO / "examples" / "my_backbone.py"
SEARCH = ["-r", "32", "-b", "8", "-P", "8", "--round", "4", "--budget-params", "150K", "--seed", "3",
          "--num-classes", "10", "--candidates", "16"]


def _zenfx(*args: str, cwd: Path, hash_seed: str = "0", timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO), "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _project(root: Path) -> Path:
    """A user's project folder: ``nets/my_backbone.py`` (the example backbone)."""
    (root / "nets").mkdir(parents=True)
    shutil.copy(BACKBONE, root / "nets" / "my_backbone.py")
    return root


def _rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines()) if "zenfx_log" not in r]


@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    """An uninterrupted 16-candidate search of the file seed in a fresh process (PYTHONHASHSEED=1)."""
    root = _project(tmp_path_factory.mktemp("identity") / "proj")
    r = _zenfx("search", "nets/my_backbone.py:build", *SEARCH, "--workers", "1", "--out", "runs/ref", cwd=root,
               hash_seed="1")
    assert r.returncode == 0, r.stderr
    return root, root / "runs" / "ref"


def test_the_same_file_search_writes_the_same_history_under_another_hash_seed_and_folder(file_run, tmp_path):
    root, ref = file_run
    other = _project(tmp_path / "elsewhere")  # the same file, in another folder, another process
    r = _zenfx("search", "nets/my_backbone.py:build", *SEARCH, "--workers", "2", "--out", "runs/b", cwd=other,
               hash_seed="2")
    assert r.returncode == 0, r.stderr
    rows = _rows(ref / "history.jsonl")
    assert any(e["kind"] == "depth" for row in rows for e in row["edits"])  # depth edits: keys by structure
    assert sum(row["verdict"] == "failed" for row in rows) == 0
    assert (other / "runs" / "b" / "history.jsonl").read_bytes() == (ref / "history.jsonl").read_bytes()
    assert (other / "runs" / "b" / "best.py").read_bytes() == (ref / "best.py").read_bytes()


def test_sigkill_then_resume_of_a_file_seed_ends_exactly_like_the_uninterrupted_run(file_run):
    root, ref = file_run
    out = root / "runs" / "killed"
    env = {**os.environ, "PYTHONHASHSEED": "2", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cli", "search", "nets/my_backbone.py:build", *SEARCH, "--workers", "1", "--out",
           str(out)]
    returncode = kill_search_mid_run(cmd, out, env=env, cwd=root)
    assert returncode == -signal.SIGKILL, "the search ended before it could be killed"
    r = _zenfx("search", "nets/my_backbone.py:build", *SEARCH, "--workers", "1", "--out", str(out), "--resume",
               cwd=root, hash_seed="3")
    assert r.returncode == 0, r.stderr
    for name in ("history.jsonl", "best.json", "best.py"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_best_json_scores_the_searchs_best_from_another_folder_and_another_machine(file_run, tmp_path):
    root, ref = file_run
    best = max((r for r in _rows(ref / "history.jsonl") if r["verdict"] in ("scored", "seed")),
               key=lambda r: r["score"])
    args = ["-b", "8", "-n", "1", "--seed", "3", "--json"]
    r = _zenfx("score", str(ref / "best.json"), *args, cwd=tmp_path, hash_seed="4")  # another folder
    assert r.returncode == 0, r.stderr
    # the same network, weights and inputs; the search may have scored it through its reused graph,
    # whose float sums can differ in the last digits (measured: 3e-9 relative)
    assert json.loads(r.stdout)["scores"]["zen"]["value"] == pytest.approx(best["score"], rel=1e-6)

    # "another machine": the project folder copied elsewhere, the original gone
    moved = tmp_path / "machine2" / "proj"
    shutil.copytree(root / "nets", moved / "nets")
    shutil.copytree(ref, moved / "runs" / "ref")
    hidden = root.with_name("proj-hidden")
    root.rename(hidden)
    try:
        r = _zenfx("score", "runs/ref/best.json", *args, cwd=moved, hash_seed="5")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["scores"]["zen"]["value"] == pytest.approx(best["score"], rel=1e-6)
        # an edited seed file is a one-line error saying so, exit 2
        path = moved / "nets" / "my_backbone.py"
        path.write_text(path.read_text() + "\n# edited\n")
        r = _zenfx("score", "runs/ref/best.json", *args, cwd=moved)
        assert r.returncode == EXIT_USAGE, r.stderr
        assert "changed since the genome was written" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        hidden.rename(root)


def test_mutate_then_score_in_fresh_processes(tmp_path):
    root = _project(tmp_path / "proj")
    r = _zenfx("mutate", "nets/my_backbone.py:build", "-r", "32", "--edits", "3", "--seed", "1", "--out", "g.json",
               cwd=root, hash_seed="1")
    assert r.returncode == 0, r.stderr
    doc = json.loads((root / "g.json").read_text())
    assert doc["seed_file"]["relative"] == "nets/my_backbone.py" and len(doc["seed_file"]["sha256"]) == 64
    (root / "sub").mkdir()
    r = _zenfx("score", "../g.json", "-b", "4", "-n", "1", cwd=root / "sub", hash_seed="2")
    assert r.returncode == 0, r.stderr


def test_a_file_seed_is_probed_once_across_processes_and_folders(tmp_path):
    cache = tmp_path / "cache"
    root = _project(tmp_path / "proj")
    env_args = dict(cwd=root)
    os.environ["ZENFX_CACHE_DIR"] = str(cache)
    try:
        for hash_seed in ("1", "2"):
            r = _zenfx("space", "nets/my_backbone.py:build", "-r", "32", "--json", hash_seed=hash_seed, **env_args)
            assert r.returncode == 0, r.stderr
        r = _zenfx("space", "proj/nets/my_backbone.py:build", "-r", "32", "--json", cwd=tmp_path, hash_seed="3")
        assert r.returncode == 0, r.stderr
    finally:
        del os.environ["ZENFX_CACHE_DIR"]
    assert len(list((cache / "space").glob("*.json"))) == 1


def test_file_module_is_named_by_content_not_by_the_process(tmp_path):
    from zenfx.genome import structure_key
    from zenfx.loading import resolve_model

    a = _project(tmp_path / "a") / "nets" / "my_backbone.py"
    b = _project(tmp_path / "b") / "nets" / "my_backbone.py"
    ma, mb = resolve_model(f"{a}:build").module, resolve_model(f"{b}:build").module
    assert type(ma).__module__ == type(mb).__module__ and type(ma).__module__.startswith("zenfx_user_")
    assert structure_key(ma) == structure_key(mb)
    code = (f"from zenfx.genome import structure_key; from zenfx.loading import resolve_model; "
            f"print(structure_key(resolve_model({str(a) + ':build'!r}).module))")
    keys = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": h}, text=True,
                           capture_output=True, check=True).stdout.strip() for h in ("1", "2")}
    assert keys == {structure_key(ma)}


def test_a_sibling_module_of_the_seed_file_imports(tmp_path):
    from zenfx.loading import resolve_model

    (tmp_path / "blocks_for_zenfx_test.py").write_text(
        "from torch import nn\n\ndef block():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n")
    (tmp_path / "net.py").write_text("from blocks_for_zenfx_test import block\n\ndef build():\n    return block()\n")
    assert resolve_model(f"{tmp_path / 'net.py'}:build").module[0].out_channels == 8
    assert str(tmp_path) not in sys.path  # the folder was importable only while the file ran


def test_a_genome_written_before_seed_files_were_hashed_still_loads(tmp_path):
    from zenfx.genome import Genome, build

    root = _project(tmp_path / "proj")
    old = {"format": "zenfx-genome", "version": 1, "zenfx_version": Genome("zoo:x").zenfx_version,
           "seed": str(root / "nets" / "my_backbone.py") + ":build", "kwargs": {}, "input_size": [3, 32, 32],
           "init_seed": 0, "edits": [{"kind": "depth", "target": "stages", "value": 3}],
           "seed_key": "0123456789abcdef"}  # an old, process-salted key: unverifiable, so not checked
    (tmp_path / "old.json").write_text(json.dumps(old))
    g = Genome.load(tmp_path / "old.json")
    assert g.seed_file is not None and g.seed_key is None
    assert len(build(g, device="meta").stages) == 3


def _fail_every_child(monkeypatch) -> None:
    """Every candidate with edits fails at build (the seed itself builds)."""
    import zenfx.genome as genome

    real = genome.build

    def build(genome, *a, **k):
        from zenfx.genome import as_genome

        if as_genome(genome).edits:
            raise RuntimeError("boom in the user's model")
        return real(genome, *a, **k)

    monkeypatch.setattr(genome, "build", build)


def test_a_search_in_which_every_candidate_fails_says_so_and_exits_6(tmp_path, monkeypatch, cli):
    from zenfx.search import search

    _fail_every_child(monkeypatch)
    root = _project(tmp_path / "proj")
    spec = f"{root / 'nets' / 'my_backbone.py'}:build"
    common = ["-r", "32", "-b", "4", "-P", "4", "--round", "4", "--candidates", "8", "--workers", "0", "--no-plots"]
    res = search(spec, out=tmp_path / "api", resolution=32, batch_size=4, population=4, round_size=4, candidates=8,
                 workers=0, plots=False)
    assert res.all_failed and res.failures["failed"] == 8 and res.failures["top_count"] == 8
    assert "boom in the user's model" in res.failures["top_error"] and res.notes[0].startswith("every candidate")
    code, stdout, stderr = cli("search", spec, *common, "--out", tmp_path / "cli")
    assert code == EXIT_SEARCH_FAILED
    assert "every candidate failed (8 of 8)" in stderr and "boom in the user's model" in stderr
    code, stdout, _ = cli("search", spec, *common, "--out", tmp_path / "cli-json", "--json")
    doc = json.loads(stdout)
    assert code == EXIT_SEARCH_FAILED and doc["exit_code"] == EXIT_SEARCH_FAILED
    assert doc["failures"]["failed"] == 8 and "every candidate failed" in doc["error"]


def test_per_candidate_draws_of_a_file_seed_are_the_same_in_any_process_and_folder(tmp_path):
    # each structure's draw is seeded by its key, which names a file seed by content: the same
    # scores from another folder, another PYTHONHASHSEED and another worker count
    runs = []
    for name, hash_seed, workers in (("a", "1", "1"), ("b", "2", "2")):
        root = _project(tmp_path / name)
        r = _zenfx("search", "nets/my_backbone.py:build", *SEARCH, "--score-draws", "per-candidate", "--workers",
                   workers, "--out", "runs/pc", cwd=root, hash_seed=hash_seed)
        assert r.returncode == 0, r.stderr
        runs.append(root / "runs" / "pc")
    assert (runs[0] / "history.jsonl").read_bytes() == (runs[1] / "history.jsonl").read_bytes()
    fixed = _zenfx("search", "nets/my_backbone.py:build", *SEARCH, "--workers", "1", "--out", "runs/fixed",
                   cwd=tmp_path / "a", hash_seed="1")
    assert fixed.returncode == 0, fixed.stderr
    pc, fx = _rows(runs[0] / "history.jsonl"), _rows(tmp_path / "a" / "runs" / "fixed" / "history.jsonl")
    assert pc[0]["key"] == fx[0]["key"] and pc[0]["score"] != fx[0]["score"]  # its own draw, not the run's
