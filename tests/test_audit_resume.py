"""``zenfx audit``: safe resume and clean failures (issue 14 items 1, 5, 6)."""

from __future__ import annotations

import csv
import json

from zenfx.audit import CSV_FIELDS

TWO = ("torchvision:resnet18", "torchvision:alexnet")


def _rows(path):
    return list(csv.DictReader(path.open()))


def test_resume_drops_a_row_cut_mid_write_and_reruns_it(cli, tmp_path):
    path = tmp_path / "audit.csv"
    code, _, _ = cli("audit", TWO[0], "--jobs", "0", "--csv", path)
    assert code == 0
    with open(path, "a") as fh:
        fh.write("torchvision,alexnet,True,symb")  # killed mid-write: no newline
    code, out, _ = cli("audit", *TWO, "--jobs", "0", "--csv", path, "--resume", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["skipped"] == 1 and [r["name"] for r in data["rows"]] == ["alexnet"]
    rows = _rows(path)
    assert [r["name"] for r in rows] == ["resnet18", "alexnet"]
    assert rows[1]["verdict"] == "convertible" and rows[1]["tracer"] == "symbolic_trace"
    assert all(len(r) == len(CSV_FIELDS) and None not in r for r in rows)
    # resuming again audits nothing twice
    code, out, _ = cli("audit", *TWO, "--jobs", "0", "--csv", path, "--resume", "--json")
    assert json.loads(out)["summary"]["skipped"] == 2 and len(_rows(path)) == 2


def test_csv_with_other_columns_is_refused_untouched(cli, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("model,top1\nresnet18,69.8\n")
    code, _, err = cli("audit", TWO[0], "--jobs", "0", "--csv", path, "--resume")
    assert code == 2 and "other columns" in err
    assert path.read_text() == "model,top1\nresnet18,69.8\n"


def test_csv_holding_rows_needs_resume(cli, tmp_path):
    path = tmp_path / "audit.csv"
    assert cli("audit", TWO[0], "--jobs", "0", "--csv", path)[0] == 0
    code, _, err = cli("audit", TWO[1], "--jobs", "0", "--csv", path)
    assert code == 2 and "--resume" in err
    assert [r["name"] for r in _rows(path)] == ["resnet18"]


def test_not_text_and_directory_are_one_line_errors(cli, tmp_path):
    binary = tmp_path / "audit.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, _, err = cli("audit", TWO[0], "--jobs", "0", "--csv", binary, "--resume")
    assert code == 2 and "not a" in err and "text file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("audit", TWO[0], "--jobs", "0", "--csv", tmp_path)
    assert code == 2 and "is a directory" in err and len(err.strip().splitlines()) == 1


def test_unknown_model_exits_2_with_suggestions(cli, tmp_path):
    code, out, err = cli("audit", "resnet1", "--jobs", "0")
    assert code == 2 and "unknown model 'resnet1'" in err and "did you mean" in err and "resnet18" in err
    code, out, _ = cli("audit", "torchvision:resnet181", "--jobs", "0", "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "resnet18" in doc["error"]
    code, _, err = cli("audit", str(tmp_path / "nofile.py") + ":build", "--jobs", "0")
    assert code == 2 and "does not exist" in err
