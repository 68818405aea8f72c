"""The new proxies through the scoring layer: ``zenfx.score(model, proxy=...)`` and ``zenfx score``."""

from __future__ import annotations

import json
import math

import torch
from torch import nn

import zenfx
from zenfx.data import tensor_batches

NEW = ("zico", "synflow", "snip", "grasp", "fisher", "grad_norm", "jacob_cov", "naswot")


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_every_new_proxy_scores_a_cnn_through_the_api():
    res = zenfx.score(small_cnn(), ",".join(NEW), input_size=(3, 16, 16), batch_size=6, repeat=2, num_classes=10)
    for name in NEW:
        s = res[name]
        assert math.isfinite(s.value), name
        assert s.repeat == 2 and len(s.values) == 2
    assert res["zico"].graph == "vcnn" and res["snip"].graph == "original"
    assert res["snip"].values[0] != res["snip"].values[1]  # fresh Gaussian batch per repeat


def test_graph_override_and_user_batches():
    x = torch.randn(12, 3, 16, 16)
    y = torch.randint(0, 10, (12,))
    prov = tensor_batches(x, y, batch_size=6)
    a = zenfx.score(small_cnn(), "snip,naswot", input_size=(3, 16, 16), batch_size=6, repeat=1, batches=prov)
    b = zenfx.score(small_cnn(), "snip,naswot", input_size=(3, 16, 16), batch_size=6, repeat=1, batches=prov)
    assert a["snip"].value == b["snip"].value and a["naswot"].value == b["naswot"].value
    c = zenfx.score(small_cnn(), "zico", input_size=(3, 16, 16), batch_size=6, repeat=1, graph="original")
    assert c["zico"].graph == "original" and math.isfinite(c["zico"].value)


def test_cli_score_selects_new_proxies(cli, tmp_path):
    f = tmp_path / "net.py"
    f.write_text("from torch import nn\n\ndef build():\n"
                 "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),"
                 " nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))\n")
    code, out, err = cli("score", f"{f}:build", "--proxy", "synflow,naswot,grad_norm", "--input-size", "3,8,8",
                         "--batch-size", "4", "--repeat", "1", "--num-classes", "10", "--json")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    assert set(scores) == {"synflow", "naswot", "grad_norm"}
    assert all(math.isfinite(v["value"]) for v in scores.values())
