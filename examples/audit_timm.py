"""Which timm models can zenfx score with the Zen-Score, and why not the others?

The Zen-Score is defined on vanilla CNNs. zenfx rewrites a traced model into that form (residual
adds keep the main branch, SE gates and attention are stripped, activations become ReLU) and says
why when it cannot (for instance branches merged by a concat, or no convolution at all).

    ./dev python examples/audit_timm.py                          # every timm model (a long run)
    ./dev python examples/audit_timm.py 'efficientnet*'          # one family
    ZENFX_EXAMPLE_FAST=1 ./dev python examples/audit_timm.py     # a handful of models (the test)

The same in one command, resumable: ./dev zenfx audit timm --csv audit.csv
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import zenfx

FAST = os.environ.get("ZENFX_EXAMPLE_FAST") == "1"
# In fast mode: one plain CNN, one with SE gates, one with concat-merged branches, one transformer.
FAST_MODELS = ["timm:resnet18", "timm:mobilenetv3_small_050", "timm:densenet121", "timm:vit_tiny_patch16_224"]


def main(pattern: str | None = None) -> None:
    if FAST:
        summary = zenfx.audit_models(FAST_MODELS, jobs=0)  # jobs=0: in this process, no workers
    else:
        # Every timm model (or those matching the pattern), built on the meta device: no memory,
        # no weights download; each in a worker process with a timeout.
        summary = zenfx.audit_models(["timm"], filter_glob=pattern, jobs=2, timeout=120)

    # One row per model: its verdict and, when it is not convertible, the reasons.
    for row in sorted(summary.rows, key=lambda r: (r["verdict"], r["name"])):
        why = f"  <- {row['reasons']}" if row["verdict"] != "convertible" and row.get("reasons") else ""
        err = f"  <- {row['error']}" if row.get("error") else ""
        print(f"{row['verdict']:16s} {row['name']}{why}{err}")

    print()
    print("verdicts:", dict(Counter(r["verdict"] for r in summary.rows)))
    # The reasons that block most models, counted once per model: where VCNN conversion stops.
    for reason, n in summary.top_reasons(5):
        print(f"  {n:5d} model(s): {reason}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
