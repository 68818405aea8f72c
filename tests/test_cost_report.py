"""cost_report API and the ``zenfx report`` command: figures, breakdown, JSON, errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import zenfx
from zenfx.cost.report import cost_report
from zenfx.errors import ShapeError, UsageError


def test_resnet18_figures_and_dict() -> None:
    rep = zenfx.cost_report("torchvision:resnet18")
    d = rep.to_dict()
    assert d["params"] == {"total": 11_689_512, "trainable": 11_689_512}
    assert abs(d["gmacs"] - 1.814) < 0.001
    assert d["flops"] == 2 * d["macs"]
    assert d["input_size"] == [3, 224, 224] and d["mac_counter"] == "torch"
    mem = d["activation_memory"]
    assert mem["largest_activation_shape"] == [1, 64, 112, 112]
    assert mem["largest_activation_bytes"] == 64 * 112 * 112 * 4
    assert mem["peak_bytes"] >= mem["largest_activation_bytes"]
    assert d["latency"] is None and "layers" not in d
    json.dumps(d)  # plain JSON types only


def test_batch_and_dtype() -> None:
    one = cost_report("torchvision:resnet18", input_size=(3, 64, 64))
    four = cost_report("torchvision:resnet18", input_size=(3, 64, 64), batch_size=4, dtype="bfloat16")
    assert four.macs.total == one.macs.total  # MACs are per image
    assert four.macs_batch == 4 * one.macs.total
    assert four.memory is not None and one.memory is not None
    assert four.memory.peak_bytes == 2 * one.memory.peak_bytes  # 4x batch, half the bytes per element


def test_per_layer_depth_sums() -> None:
    rep = cost_report("torchvision:resnet18", depth=1)
    rows = {r.path: r for r in rep.layers}
    assert rows[""].macs == rep.macs.total
    assert sum(r.macs for r in rep.layers if r.depth == 1) == rep.macs.total
    assert sum(r.params for r in rep.layers if r.depth == 1) == rep.params.total
    assert rows["layer4"].output_shape == (1, 512, 7, 7)
    deep = cost_report("torchvision:resnet18", depth=2)
    assert any(r.path == "layer1.0" for r in deep.layers)


def test_module_instance_and_vit() -> None:
    rep = cost_report(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_size=(3, 10, 10))
    assert rep.macs.total == 4 * 8 * 8 * 27
    vit = cost_report("torchvision:vit_b_16")
    assert abs(vit.macs.total / 1e9 - 17.564) < 0.01  # attention included


def test_fvcore_counter_close() -> None:
    torch_rep = cost_report("torchvision:resnet18", input_size=(3, 64, 64))
    fv = cost_report("torchvision:resnet18", input_size=(3, 64, 64), counter="fvcore")
    assert fv.macs.counter == "fvcore"
    assert abs(fv.macs.total - torch_rep.macs.total) / torch_rep.macs.total < 0.05


def test_errors() -> None:
    with pytest.raises(ShapeError, match=r"features\.\d+.*MaxPool2d"):
        cost_report("torchvision:alexnet", input_size=(3, 16, 16))
    with pytest.raises(UsageError, match="counter"):
        cost_report("torchvision:resnet18", counter="nope")
    with pytest.raises(UsageError, match="float16"):
        cost_report("torchvision:resnet18", latency=True, dtype="float16")


def test_latency_and_prediction_small(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 2))
    rep = cost_report(net, input_size=(3, 16, 16), batch_size=2, latency=True, predict=True, threads=1,
                      min_run_time=0.05, warmup=2, depth=1)
    assert rep.latency is not None and rep.latency.threads == 1 and rep.latency.median_s > 0
    assert rep.latency.per_image_median_s == pytest.approx(rep.latency.median_s / 2)
    assert rep.predicted is not None and rep.predicted.total_s > 0
    d = rep.to_dict()
    assert d["latency"]["threads"] == 1 and d["latency_predicted"]["batch_size"] == 2
    assert any(r.predicted_ms is not None for r in rep.layers)


# --------------------------------------------------------------------------- CLI


def test_cli_report_json(cli) -> None:
    code, out, _ = cli("report", "torchvision:resnet18", "--resolution", "64", "--json", "--per-layer", "--depth", "1")
    assert code == 0
    d = json.loads(out)
    assert d["input_size"] == [3, 64, 64] and d["depth"] == 1 and d["layers"][0]["path"] == ""


def test_cli_report_table(cli) -> None:
    code, out, _ = cli("report", "torchvision.models.resnet18", "-r", "64", "--per-layer")
    assert code == 0
    assert "MACs" in out and "FLOPs = 2*MACs" in out and "activation peak" in out and "layer1" in out


def test_cli_bad_resolution_one_line(cli) -> None:
    code, out, err = cli("report", "torchvision.models.alexnet", "--resolution", "16")
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "features.5" in lines[0] and "MaxPool2d" in lines[0] and "(1, 192, 1, 1)" in lines[0]


def test_cli_vgg_tiny(cli) -> None:
    code, _, err = cli("report", "torchvision:vgg11", "--resolution", "16")
    assert code == 2 and "MaxPool2d" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_cuda_without_cuda(cli) -> None:
    code, _, err = cli("report", "torchvision:resnet18", "--latency", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


def test_cli_fp16_cpu_latency(cli) -> None:
    code, _, err = cli("report", "torchvision:resnet18", "--latency", "--dtype", "float16")
    assert code == 2 and "float16" in err


def test_cli_bad_counter_and_dtype(cli) -> None:
    assert cli("report", "torchvision:resnet18", "--counter", "nope")[0] == 2
    assert cli("report", "torchvision:resnet18", "--dtype", "int3")[0] == 2


def test_cli_latency_prints_threads(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZENFX_CACHE_DIR", str(tmp_path))
    code, out, _ = cli("report", "torchvision:squeezenet1_1", "-r", "32", "--latency", "--threads", "1",
                       "--min-run-time", "0.05", "--json")
    assert code == 0
    lat = json.loads(out)["latency"]
    assert lat["threads"] == 1 and lat["median_ms"] > 0 and lat["iqr_ms"] >= 0 and lat["per_image_median_ms"] > 0


def test_vcnn_report() -> None:
    orig = cost_report("torchvision:resnet18", input_size=(3, 64, 64))
    rep = cost_report("torchvision:resnet18", input_size=(3, 64, 64), vcnn=True, batch_size=2, depth=1)
    d = rep.to_dict()
    assert d["graph"] == "vcnn" and d["vcnn"]["verdict"] in ("convertible", "approximate")
    # the shortcut projections and the classifier are gone
    assert rep.macs.total < orig.macs.total and rep.params.total < orig.params.total
    assert rep.memory is not None and rep.memory.nodes  # shapes re-propagated at batch 2
    assert any("VCNN" in n for n in rep.notes)
    rows = {r.path: r for r in rep.layers}
    assert rows["layer1"].macs > 0  # rolled up from the graph's leaf modules
    assert sum(r.macs for r in rep.layers if r.depth == 1) == rep.macs.total


def test_cli_vcnn_json(cli) -> None:
    code, out, _ = cli("report", "torchvision:resnet18", "-r", "64", "--vcnn", "--json")
    assert code == 0 and json.loads(out)["graph"] == "vcnn"


def test_traced_model_is_not_retraced() -> None:
    tm = zenfx.load_and_trace("torchvision:resnet18", None, (3, 64, 64), device="meta")
    rep = cost_report(tm)
    fresh = cost_report("torchvision:resnet18", input_size=(3, 64, 64))
    assert rep.input_size == (3, 64, 64) and rep.macs.total == fresh.macs.total
    rep4 = cost_report(tm, batch_size=4)
    assert rep.memory is not None and rep4.memory is not None
    assert rep4.memory.peak_bytes == 4 * rep.memory.peak_bytes
    first = next(n for n in tm.gm.graph.nodes if n.op == "placeholder")
    assert first.meta["shape"][0] == 1  # the caller's graph is untouched
