"""An SE gate is a gate by structure, not by shape (issue 22 item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

NETS = Path(__file__).resolve().parent / "sweep_nets.py"


@pytest.mark.parametrize("pool", ["functional", "module", "mean"])
def test_an_se_gate_is_recognised_at_a_resolution_where_its_stage_is_1x1(pool):
    """item 7: the gate is a gate because its branch pools globally, not because shapes broadcast:
    the verdict and the gates stripped are the same at 224 and at 32, where the last stages run at
    1x1; and the search half scores it there."""
    import zenfx

    spec = f"{NETS}:mobile_se"
    res = {r: zenfx.convert_model(spec, {"pool": pool}, input_size=(3, r, r), strict=False)
           for r in (32, 224)}
    for r, vc in res.items():
        assert vc.convertible, (r, vc.reasons)
    gates = {r: sum(1 for c in vc.changes if c.kind == "gate") for r, vc in res.items()}
    assert gates[32] == gates[224] == 7
    from zenfx.genome import Genome
    from zenfx.search.candidate import EvalSettings, evaluate, init_worker

    out = evaluate(init_worker(EvalSettings(batch_size=2)), Genome(spec, {"pool": pool}, (3, 32, 32)).to_dict())
    assert out["status"] == "scored", out["error"]
