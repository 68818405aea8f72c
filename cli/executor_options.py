"""Options every parallel command shares (audit, bench, search): where the work runs.

Kept apart from ``common.py`` so that a command adding them imports nothing heavy: the executor
itself (and Ray) is imported only inside the command, when it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Where workers run: local (processes on this machine) or ray (Ray actors; "
                      "pip install zenfx[ray]).")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Ray cluster to join with --backend ray: auto (the one `ray start` runs here) or "
                          "HOST:PORT; default: start a local Ray sized to --workers.")]
