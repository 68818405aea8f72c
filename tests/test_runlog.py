"""Resumable rows (JSONL and CSV) and atomic JSON files: what a killed run leaves behind is read
back safely, and another run's file is never appended to."""

from __future__ import annotations

import json
import os

import pytest

from zenfx.errors import UsageError
from zenfx.runlog import CsvLog, JsonlLog, atomic_write_json, read_json

HEADER = {"space": "nb201", "seed": 0}


def test_jsonl_header_rows_and_reopen(tmp_path):
    p = tmp_path / "sub" / "rows.jsonl"
    with JsonlLog(p, header=HEADER) as log:
        log.append({"i": 1})
        log.append({"i": 2, "x": float("inf")})
    lines = p.read_text().splitlines()
    assert json.loads(lines[0]) == {"zenfx_log": 1, "header": HEADER}
    again = JsonlLog(p, header=dict(HEADER))
    assert [r["i"] for r in again.rows()] == [1, 2] and again.rows()[1]["x"] == float("inf")
    assert JsonlLog(p).rows() == again.rows()  # no header asked: any file reads


def test_jsonl_truncated_last_line_dropped_and_cut(tmp_path):
    p = tmp_path / "rows.jsonl"
    with JsonlLog(p, header=HEADER) as log:
        log.append({"i": 1})
    with open(p, "a") as fh:
        fh.write('{"i": 2, "sco')  # killed mid-write
    log = JsonlLog(p, header=HEADER)
    assert [r["i"] for r in log.rows()] == [1] and log.dropped == 0
    assert p.read_text().endswith("\n")  # the partial line is gone from the file
    log.append({"i": 2})
    log.close()
    assert [r["i"] for r in JsonlLog(p, header=HEADER).rows()] == [1, 2]
    assert all(json.loads(line) for line in p.read_text().splitlines())


def test_jsonl_garbled_middle_line_is_dropped_not_fatal(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text(json.dumps({"zenfx_log": 1, "header": HEADER}) + '\n{"i": 1}\n{"i": 2{"i": 3}\n{"i": 4}\n')
    log = JsonlLog(p, header=HEADER)
    assert [r["i"] for r in log.rows()] == [1, 4] and log.dropped == 1


def test_jsonl_other_run_refused(tmp_path):
    p = tmp_path / "rows.jsonl"
    JsonlLog(p, header=HEADER).append({"i": 1})
    with pytest.raises(UsageError, match=r"different run \(seed: 0 there, 1 now\)"):
        JsonlLog(p, header={"space": "nb201", "seed": 1})
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"i": 1}\n')
    with pytest.raises(UsageError, match="without a run header"):
        JsonlLog(bare, header=HEADER)
    assert bare.read_text() == '{"i": 1}\n'  # untouched


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xfe\xfa rows\n"])
def test_not_text_is_one_line_error(tmp_path, content):
    for make in (lambda p: JsonlLog(p, header=HEADER), lambda p: CsvLog(p, ["a", "b"]),
                 lambda p: read_json(p, "config")):
        p = tmp_path / "f"
        p.write_bytes(content)
        with pytest.raises(UsageError, match="not a (UTF-8 )?text file") as exc:
            make(p)
        assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_directory_instead_of_file(tmp_path):
    for make in (lambda p: JsonlLog(p), lambda p: CsvLog(p, ["a"]), lambda p: atomic_write_json(p, {})):
        with pytest.raises(UsageError, match="is a directory"):
            make(tmp_path)


def test_csv_partial_row_dropped_and_rerun(tmp_path):
    p = tmp_path / "audit.csv"
    fields = ["source", "name", "traceable", "tracer", "reasons"]
    with CsvLog(p, fields) as log:
        log.append({"source": "torchvision", "name": "resnet18", "traceable": True, "tracer": "symbolic_trace",
                    "reasons": "line one\nline two"})
    with open(p, "a") as fh:
        fh.write("torchvision,resnet152,True,symb")  # the example: cut mid-write
    log = CsvLog(p, fields)
    assert [r["name"] for r in log.rows()] == ["resnet18"]
    assert log.rows()[0]["reasons"] == "line one line two"  # one physical line per row
    log.append({"source": "torchvision", "name": "resnet152", "traceable": True, "tracer": "symbolic_trace"})
    log.close()
    assert [r["name"] for r in CsvLog(p, fields).rows()] == ["resnet18", "resnet152"]
    assert p.read_text().count("\n") == 3


def test_csv_other_header_refused_and_untouched(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(UsageError, match="other columns"):
        CsvLog(p, ["a", "b"])
    assert p.read_text() == "a,b,c\n1,2,3\n"


def test_csv_new_and_empty_files_get_the_header(tmp_path):
    p = tmp_path / "new.csv"
    CsvLog(p, ["a", "b"]).close()
    assert p.read_text() == "a,b\n"
    p.write_text("a,")  # a header cut mid-write: nothing to keep
    CsvLog(p, ["a", "b"]).close()
    assert p.read_text() == "a,b\n"


def test_atomic_write_json_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "d" / "state.json"
    atomic_write_json(p, {"round": 1})
    atomic_write_json(p, {"round": 2})
    assert read_json(p, "checkpoint") == {"round": 2}
    with pytest.raises(TypeError):
        atomic_write_json(p, {"bad": object()})
    assert read_json(p, "checkpoint") == {"round": 2}  # the old file survives a failed write
    assert os.listdir(p.parent) == ["state.json"]


def test_read_json_truncated_corrupt_missing(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"round": 3, "pop')
    with pytest.raises(UsageError, match=r"checkpoint .*c\.json is truncated"):
        read_json(p, "checkpoint")
    p.write_text('{"round": 3,, "x": 1}')
    with pytest.raises(UsageError, match="is corrupt"):
        read_json(p, "checkpoint")
    with pytest.raises(UsageError, match="not found"):
        read_json(tmp_path / "none.json", "checkpoint")
