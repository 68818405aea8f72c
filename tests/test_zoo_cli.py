"""``zenfx zoo``: every entry listed with its kind, size and stored, command-stamped figures."""

from __future__ import annotations

import json

import pytest

import zenfx
from zenfx.zoo import figures
from zenfx.zoo.registry import KINDS, get_entry, list_entries


def test_zoo_json_lists_every_entry(cli):
    code, out, _ = cli("zoo", "--json")
    assert code == 0
    rows = json.loads(out)["entries"]
    assert [r["name"] for r in rows] == [e.name for e in list_entries()]
    assert all(r["kind"] in KINDS and len(r["input_size"]) == 3 and r["spec"] == f"zoo:{r['name']}" for r in rows)
    kinds = {r["kind"] for r in rows}
    assert {"family", "seed", "released"} <= kinds
    released = [r for r in rows if r["kind"] == "released"]
    assert len(released) == 12 and all(r["meta"]["published"]["params"] for r in released)


def test_zoo_pattern_and_kind_filters(cli):
    code, out, _ = cli("zoo", "zennet_imagenet_latency*", "--json")
    assert code == 0 and len(json.loads(out)["entries"]) == 6
    code, out, _ = cli("zoo", "cifar", "--kind", "seed", "--json")  # a plain word matches inside names
    assert code == 0
    assert {r["name"] for r in json.loads(out)["entries"]} == {"cifar_resnet_basic", "cifar_resnet_bottleneck",
                                                               "zennas_cifar_seed"}
    code, out, err = cli("zoo", "no_such_thing")
    assert code == 2 and "no zoo entry matches" in out + err
    code, out, err = cli("zoo", "--kind", "nope")
    assert code == 2 and "unknown zoo kind" in out + err


def test_zoo_table_shows_figures(cli):
    code, out, _ = cli("zoo", "cifar_resnet20")
    assert code == 0
    assert "zoo:cifar_resnet20" in out and "family" in out and "./dev zenfx score zoo:NAME" in out


def test_every_entry_has_stored_figures_with_their_command():
    stored = figures.load()
    for entry in list_entries():
        if entry.kind == "found":
            continue  # found nets carry their figures in their own genome file
        fig = stored.get(entry.name)
        assert fig, f"{entry.name}: no stored figures (run ./dev python -m zenfx.zoo.figures {entry.name})"
        command = f"./dev zenfx score zoo:{entry.name}"
        # the ImageNet-size nets were scored on a GPU (hours each on the shared 2-core CPU): it says so
        assert fig["zen_command"] in (command, command + " --device cuda") and fig["zen_date"].startswith("20")
        assert fig["zen_device"].startswith("cuda") == fig["zen_command"].endswith("--device cuda")
        assert isinstance(fig["zen"], float) and fig["zen"] > 0
        assert fig["params"] > 0 and fig["macs"] > 0 and fig["input_size"] == list(entry.input_size)


@pytest.mark.parametrize("name", ["cifar_resnet_basic", "cifar_resnet_bottleneck", "cifar_resnet20", "zennet_cifar_1m",
                                  "zennas_cifar_seed"])
def test_stored_cost_figures_are_not_stale(name):
    fig = figures.load()[name]
    live = figures.cost(name)
    assert (fig["params"], fig["macs"]) == (live["params"], live["macs"])
    assert get_entry(name).input_size == tuple(fig["input_size"])


def test_zoo_listing_imports_no_torch(zenfx_exe):
    import subprocess
    import sys

    code = ("import sys; from zenfx.zoo.registry import list_entries; list_entries(); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
    assert zenfx.__version__
