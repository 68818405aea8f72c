"""The latency predictor's calibration (issue 22 item 7b): a per-op / per-module-call overhead probed
once per table, stored with it, applied deterministically; an old table without one still loads.

The probe itself is replaced by a fixed calibration where a test checks bookkeeping, so no test
depends on timings (one runs the real probe and checks only its shape)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from zenfx import trace
from zenfx.cost import predictor
from zenfx.cost.calibration import Calibration, overhead_counts, probe_networks
from zenfx.cost.predictor import LatencyTable, predict_latency, probe_calibration
from zenfx.errors import UsageError

FIXED = Calibration(per_op_s=1e-6, per_call_s=2e-6, probe={"fake": True})


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.Sequential(nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)) + x


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 1), _Block(), _Block())


@pytest.fixture
def fake_probe(monkeypatch, tmp_path) -> list[int]:
    """A private cache and a probe that returns ``FIXED`` and counts its calls."""
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    calls: list[int] = []

    def probe(*_a, **_k) -> Calibration:
        calls.append(1)
        return FIXED

    monkeypatch.setattr(predictor, "measure_calibration", probe)
    return calls


def test_overhead_counts_read_container_calls_from_the_module_stack() -> None:
    """Leaf calls are timed with their own __call__; each block and its inner Sequential is not: two
    per _Block, plus the root call."""
    gm = trace(_net(), (3, 8, 8))
    counts = overhead_counts(gm, 7)
    assert counts.ops == 7 and counts.module_calls == 2 * 2 + 1
    flat = trace(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), (3, 8, 8))
    assert overhead_counts(flat, 2).module_calls == 1


def test_overhead_counts_without_a_module_stack_fall_back_to_target_parents() -> None:
    gm = trace(_net(), (3, 8, 8))
    for node in gm.graph.nodes:
        node.meta.pop("nn_module_stack", None)
    # parents of 1.conv, 1.act.0, 2.conv, 2.act.0: "1", "1.act", "2", "2.act"; plus the root
    assert overhead_counts(gm, 7).module_calls == 5


def test_calibration_is_stored_with_the_table_and_reloaded_not_reprobed(fake_probe) -> None:
    p1 = predict_latency(_net(), (3, 8, 8), threads=1, min_run_time=0.005)
    assert fake_probe == [1] and p1.calibrated
    table = LatencyTable.for_setting("cpu", "float32", 1, 1)
    assert table.calibration == FIXED
    assert json.loads(table.path.read_text())["calibration"]["per_call_s"] == FIXED.per_call_s
    p2 = predict_latency(_net(), (3, 8, 8), threads=1, table=table, measure_missing=False)
    assert fake_probe == [1]  # read from disk, not probed again
    assert p2.total_s == p1.total_s and p2.overhead_s == p1.overhead_s  # deterministic given the table


def test_calibrated_prediction_adds_the_overhead_to_the_raw_sum(fake_probe) -> None:
    p = predict_latency(_net(), (3, 8, 8), threads=1, min_run_time=0.005)
    assert p.counts is not None
    expected = FIXED.per_op_s * p.counts.ops + FIXED.per_call_s * p.counts.module_calls
    assert p.overhead_s == pytest.approx(expected) and p.overhead_s > 0
    assert p.total_s == pytest.approx(p.raw_s + expected) and p.total_s > p.raw_s
    assert p.raw_s == pytest.approx(sum(n.seconds for n in p.nodes))
    d = p.to_dict()
    assert d["calibrated"] and d["threads"] == 1 and d["raw_predicted_ms"] < d["predicted_ms"]
    raw = predict_latency(_net(), (3, 8, 8), threads=1, calibrate=False, measure_missing=False)
    assert raw.total_s == raw.raw_s == pytest.approx(p.raw_s) and not raw.calibrated


def test_an_old_table_without_calibration_loads_and_is_calibrated_on_use(fake_probe) -> None:
    predict_latency(_net(), (3, 8, 8), threads=1, min_run_time=0.005, calibrate=False)
    table = LatencyTable.for_setting("cpu", "float32", 1, 1)
    doc = json.loads(table.path.read_text())
    doc.pop("calibration")  # the format before calibration existed (same version number)
    table.path.write_text(json.dumps(doc))
    old = LatencyTable.for_setting("cpu", "float32", 1, 1)
    assert old.calibration is None and len(old) == len(doc["entries"]) > 0
    with pytest.raises(UsageError, match="no calibration"):  # a lookup-only prediction cannot probe
        predict_latency(_net(), (3, 8, 8), threads=1, table=old, measure_missing=False)
    p = predict_latency(_net(), (3, 8, 8), threads=1, table=old)
    assert p.calibrated and p.measured == 0 and fake_probe == [1]
    assert LatencyTable.for_setting("cpu", "float32", 1, 1).calibration == FIXED


@pytest.mark.parametrize("bad", [None, "x", {}, {"per_op_s": -1, "per_call_s": 0}, {"per_op_s": "a", "per_call_s": 1},
                                 {"per_op_s": float("nan"), "per_call_s": 1e-6}])
def test_a_malformed_stored_calibration_is_ignored_not_fatal(bad, fake_probe) -> None:
    predict_latency(_net(), (3, 8, 8), threads=1, min_run_time=0.005)
    path = LatencyTable.for_setting("cpu", "float32", 1, 1).path
    doc = json.loads(path.read_text())
    doc["calibration"] = bad
    path.write_text(json.dumps(doc))
    assert LatencyTable.for_setting("cpu", "float32", 1, 1).calibration is None


def test_the_first_stored_calibration_wins(fake_probe) -> None:
    """Two processes that both probed: the second to save adopts the first one's calibration, so
    every worker of a search predicts with the same one."""
    first = LatencyTable.for_setting("cpu", "float32", 1, 1)
    second = LatencyTable.for_setting("cpu", "float32", 1, 1)
    first.calibration = FIXED
    first.save()
    second.calibration = Calibration(5e-6, 5e-6, {})
    second.save()
    assert second.calibration == FIXED
    assert LatencyTable.for_setting("cpu", "float32", 1, 1).calibration == FIXED


def test_the_real_probe_returns_non_negative_coefficients(tmp_path) -> None:
    """Shape only (no timed assertion): both probes have the same ops, the nested one more calls."""
    nets = probe_networks(4)
    assert set(nets) == {"flat", "nested"}
    table = LatencyTable.for_setting("cpu", "float32", 1, 1, directory=tmp_path)
    cal = probe_calibration(table, torch.device("cpu"), torch.float32, run_time=0.01)
    assert cal.per_op_s >= 0 and cal.per_call_s >= 0 and math.isfinite(cal.per_op_s + cal.per_call_s)
    ops_flat, calls_flat = cal.probe["flat_counts"]
    ops_nested, calls_nested = cal.probe["nested_counts"]
    assert ops_flat == ops_nested and calls_nested > calls_flat == 1
    assert len(table) == 0  # the probe's operators stay out of the user's table


def test_the_search_note_carries_the_measured_expected_error() -> None:
    from zenfx.search.budget import Budgets
    from zenfx.search.run import PREDICTOR_CPU_ERROR, latency_note

    note = latency_note(Budgets(latency=0.008))
    assert f"expected error {PREDICTOR_CPU_ERROR}" in note and "calibrated" in note and "1 thread" in note
    assert "latency_calibration_cpu_wall_clock.txt" in PREDICTOR_CPU_ERROR and "%" in PREDICTOR_CPU_ERROR
