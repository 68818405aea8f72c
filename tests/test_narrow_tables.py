"""Tables on narrow terminals (issue 22 item 6): a number or a unit is never cut. Every command's
tables are printed at 60 and 80 columns and every figure of the wide (200-column) output must
appear whole; name and status columns may fold, and a table that cannot fit is stacked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.table import Table

from zenfx.cli import common

NETS = Path(__file__).resolve().parent / "sweep_nets.py"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_CELL_SPLIT = re.compile(r"[│┃]")


def _figures(text: str) -> set[str]:
    """Figure cells (numbers with their units) of the box tables in ``text``."""
    found = set()
    for line in text.splitlines():
        if not _CELL_SPLIT.search(line):
            continue
        for cell in _CELL_SPLIT.split(line):
            cell = cell.strip()
            if cell and cell not in "—-" and common._FIGURE.match(cell):
                found.add(cell)
            elif cell:
                found.update(common._NUMBER.findall(cell))  # a number inside text is never folded either
    return found


def _whole(token: str, text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(token)}(?![\w.])", text) is not None


@pytest.fixture
def width(monkeypatch):
    def set_width(w: int) -> None:
        monkeypatch.setattr(common.out, "_width", w)

    return set_width


def test_print_table_never_cuts_a_figure(width, capsys):
    t = Table(title="t")
    for col in ("spec", "kind", "input", "params", "MACs", "Zen"):
        t.add_column(col, justify="left" if col in ("spec", "kind") else "right")
    t.add_row("zoo:zennas_imagenet_latency_seed", "seed", "224x224", "155.03k", "182.50M", "172.25")
    t.add_row("zoo:cifar_resnet20", "family", "32x32", "272.47k", "40.81M", "40.53 ± 1.15")
    for w in (40, 60, 80, 120):
        width(w)
        common.print_table(t)
        text = capsys.readouterr().out
        for fig in ("224x224", "155.03k", "182.50M", "172.25", "40.53 ± 1.15", "40.81M"):
            assert _whole(fig, text), (w, fig, text)


def _commands(tmp_path):
    runs = iter(range(100))
    small = ["-r", "32"]
    cmds = {
        "zoo": lambda: ["zoo"],
        "space": lambda: ["space", "zoo:cifar_resnet20", *small],
        "mutate": lambda: ["mutate", "zoo:cifar_resnet20", *small, "-b", "2"],
        "search": lambda: ["search", "zoo:cifar_resnet_basic", *small, "-b", "2", "--workers", "0", "--candidates", "4",
                           "-P", "4", "--round", "4", "--no-plots", "--budget-params", "200k",
                           "--out", str(tmp_path / f"run{next(runs)}")],
        "score": lambda: ["score", "zoo:cifar_resnet20", *small, "-b", "2", "--repeat", "2", "--proxy", "zen,params"],
        "report": lambda: ["report", "zoo:cifar_resnet20", *small, "--per-layer"],
        "convert": lambda: ["convert", f"{NETS}:mixed", *small],
        "inspect": lambda: ["inspect", "zoo:cifar_resnet20", *small],
    }
    if SHARED_DATA.exists():
        cmds["bench search"] = lambda: ["bench", "search", "--truth", str(SHARED_DATA), "--candidates", "4",
                                        "--runs", "1", "-P", "4", "--round", "4", "-b", "2", "--workers", "0",
                                        "--out", str(tmp_path / f"bench{next(runs)}")]
    return cmds


SLOW = ("search", "score", "report", "bench search")  # these time things: figures compared where two wide runs agree


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in ("zoo", "space", "mutate", "convert", "inspect", *SLOW)])
def test_every_command_keeps_its_figures_whole_at_60_and_80_columns(cli, width, tmp_path, name, one_thread):
    cmds = _commands(tmp_path)
    if name not in cmds:
        pytest.skip("no NATS-Bench data here")
    width(119)  # the widest layout with the columns a narrow one has (zoo adds descriptions from 120)
    code, wide, stderr = cli(*cmds[name]())
    assert code == 0, stderr
    figures = _figures(wide)
    if name in SLOW:
        figures &= _figures(cli(*cmds[name]())[1])  # timings differ run to run
        figures = {f for f in figures if not (f.isdigit() or f.endswith(" s"))}  # seconds, however equal
    assert figures, wide
    for w in (60, 80):
        width(w)
        code, text, stderr = cli(*cmds[name]())
        assert code == 0, stderr
        cut = sorted(f for f in figures if not _whole(f, text))
        assert not cut, (w, cut, text)
        for line in text.splitlines():
            if line[:1] in "┏┃┡│└┌":
                assert len(line) <= w, (w, line)
        if name == "space":
            assert "free" in text and "frozen" in text


def test_the_live_search_line_drops_words_not_digits():
    from zenfx.cli.cmd_search import status_line
    from zenfx.search.run import SearchProgress

    p = SearchProgress(proposed=123, scored=100, rejected=20, failed=3, best=12.4567, seed_score=10.25,
                       elapsed_s=61.0, candidates=500, time_limit=None, rounds=8)
    for w in (40, 58, 78, 200):
        line = status_line(p, w)
        assert len(line) <= w or w < 40
        assert "123/500" in line and "12.457" in line
    assert "rejected" in status_line(p, 200) and "ETA" in status_line(p, 78)
