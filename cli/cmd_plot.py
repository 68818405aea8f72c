"""``zenfx plot RUN_DIR``: redraw a search's plots from its files."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import JsonOpt, handle_errors, out, print_json


@handle_errors
def plot_cmd(
    run_dir: Annotated[str, typer.Argument(help="A zenfx search run folder.")],
    json: JsonOpt = False,
) -> None:
    """Redraw RUN_DIR/plots (progress, score vs MACs and params with the Pareto front, seed vs best per
    stage) from history.jsonl, timings.jsonl and summary.json."""
    from zenfx.search.plots import draw

    written = draw(run_dir)
    if json:
        print_json({"run_dir": run_dir, "plots": written})
        return
    if not written:
        out.print("nothing scored yet: no plots", highlight=False)
    for p in written:
        out.print(p, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_cmd)
