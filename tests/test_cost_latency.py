"""Measured latency plumbing and the per-operator latency table / predictor."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from zenfx import trace
from zenfx.cost.latency import measure_latency
from zenfx.cost.predictor import LatencyTable, cache_dir, op_key, predict_latency
from zenfx.devices import parse_device, parse_dtype
from zenfx.errors import UsageError


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_measure_latency_fields() -> None:
    r = measure_latency(_net(), (3, 16, 16), batch_size=2, threads=1, warmup=2, min_run_time=0.05)
    assert r.threads == 1 and r.batch_size == 2 and r.device == "cpu" and r.dtype == "float32"
    assert r.median_s > 0 and r.iqr_s >= 0 and r.per_image_median_s == pytest.approx(r.median_s / 2)
    assert torch.get_num_threads() >= 1  # restored


def test_thread_clock_only_single_thread_cpu() -> None:
    r = measure_latency(_net(), (3, 16, 16), threads=1, warmup=1, min_run_time=0.05, clock="thread")
    assert r.clock == "thread" and r.median_s > 0
    with pytest.raises(UsageError):
        measure_latency(_net(), (3, 16, 16), threads=2, min_run_time=0.05, clock="thread")


def test_bad_device_dtype() -> None:
    with pytest.raises(UsageError):
        parse_dtype("int3")
    with pytest.raises(UsageError):
        measure_latency(_net(), (3, 8, 8), dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            parse_device("cuda")
    with torch.device("meta"):
        meta = _net()
    with pytest.raises(UsageError, match="meta"):
        measure_latency(meta, (3, 8, 8))


def test_cache_dir_env(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ZENFX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "zenfx"
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"


def test_op_keys_distinguish_config() -> None:
    gm = trace(_net(), (3, 16, 16))
    keys = [op_key(gm, n) for n in gm.graph.nodes]
    assert keys[0] is None and keys[-1] is None  # placeholder, output
    conv, dw = keys[1], keys[4]
    assert "groups=8" in dw and "groups" not in conv
    assert "T[1, 3, 16, 16]" in conv and "->[1, 8, 16, 16]" in conv


def test_predict_caches_table(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    net = _net()
    p1 = predict_latency(net, (3, 16, 16), threads=1, min_run_time=0.01)
    assert p1.measured > 0 and p1.total_s > 0
    assert p1.raw_s == pytest.approx(sum(n.seconds for n in p1.nodes)) and p1.total_s >= p1.raw_s  # + overhead
    path = tmp_path / "latency"
    files = list(path.glob("*__b1__t1__*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["batch_size"] == 1 and doc["threads"] == 1 and doc["dtype"] == "float32" and doc["entries"]
    p2 = predict_latency(net, (3, 16, 16), threads=1)
    assert p2.measured == 0 and p2.total_s == pytest.approx(p1.total_s)
    # a wider net shares the ops it has in common, measures only the new ones
    p3 = predict_latency(nn.Sequential(*list(_net())[:3]), (3, 16, 16), threads=1, min_run_time=0.01)
    assert p3.measured == 0
    # another batch size is another table
    predict_latency(net, (3, 16, 16), batch_size=2, threads=1, min_run_time=0.01)
    assert len(list(path.glob("*.json"))) == 2
    table = LatencyTable.for_setting("cpu", "float32", 1, 1)
    assert len(table) == len(doc["entries"])
    with pytest.raises(UsageError):
        predict_latency(nn.Sequential(nn.Conv2d(3, 5, 1)), (3, 16, 16), threads=1, measure_missing=False)


def test_inplace_ops_do_not_corrupt_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))

    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 0.5
            y.mul_(0.5)
            return y.add_(1.0)

    p = predict_latency(Net(), (3, 8, 8), threads=1, min_run_time=0.01)
    assert p.measured == 3


def test_corrupt_cache_is_ignored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    t = LatencyTable.for_setting("cpu", "float32", 1, 1)
    assert t.path is not None
    t.path.parent.mkdir(parents=True)
    t.path.write_text("{not json")
    assert len(LatencyTable.for_setting("cpu", "float32", 1, 1)) == 0


@pytest.mark.slow
def test_bench_latency_predictor_smoke(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_latency_predictor.py"
    spec = importlib.util.spec_from_file_location("bench_latency_predictor", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "pred.json"
    assert bench.main(["--fresh", "--limit", "3", "--resolution", "64", "--min-run-time", "0.05",
                       "--json-out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["summary"]["models"] == 3 and -1 <= doc["summary"]["spearman_rho"] <= 1


def test_meta_graph_predicts_from_table(tmp_path, monkeypatch) -> None:
    """Search candidates can be predicted on meta graphs once their operators are in the table."""
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    real = predict_latency(_net(), (3, 16, 16), threads=1, min_run_time=0.01)
    with torch.device("meta"):
        meta = _net()
    gm = trace(meta, (3, 16, 16))
    again = predict_latency(gm, (3, 16, 16), threads=1, measure_missing=False)
    assert again.measured == 0 and again.total_s == pytest.approx(real.total_s)
    with torch.device("meta"):
        other = nn.Sequential(nn.Conv2d(3, 7, 1))
    with pytest.raises(UsageError, match="real weights"):
        predict_latency(trace(other, (3, 16, 16)), (3, 16, 16), threads=1)


def test_isolated_and_context_methods_time_the_same_operators(tmp_path, monkeypatch) -> None:
    """Both timers resolve a node's callable the same way (modules, methods, functions, in-place ops)."""
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 8 * 8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu_(self.conv(x)).flatten(1)
            return self.fc(y.mul(2.0))

    got = {}
    for method in ("isolated", "context"):
        p = predict_latency(Net(), (3, 8, 8), 2, threads=1, method=method, save=False, min_run_time=0.005)
        got[method] = sorted(n.key for n in p.nodes)
        assert p.total_s > 0 and p.measured == len(p.nodes)
    assert got["isolated"] == got["context"] and len(got["context"]) == 5
