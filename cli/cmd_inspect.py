"""``zenfx inspect MODEL``: what the traced graph contains, before any rewriting."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ModelArg,
    ResolutionOpt,
    handle_errors,
    input_size_option,
    print_json,
    print_table,
)


@handle_errors
def inspect_cmd(model: ModelArg, kwarg: KwargOpt = None, resolution: ResolutionOpt = None,
                input_size: InputSizeOpt = None, json: JsonOpt = False) -> None:
    """Trace MODEL and count its nodes, convolutions, norms, residual adds, concats and multiplies."""
    import zenfx

    kwargs = zenfx.parse_kwargs(kwarg)
    size = input_size_option(input_size, resolution)
    info = zenfx.inspect_model(model, kwargs, size)
    if json:
        print_json(info)
        return
    table = Table(title=f"{info['model']} ({info['source']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("tracer", info["tracer"])
    table.add_row("input size", "x".join(map(str, info["input_size"])))
    table.add_row("output shape", str(info["output_shape"]))
    table.add_row("params", f"{info['params']:,}")
    table.add_row("nodes", f"{info['nodes']} (" + ", ".join(f"{k} {v}" for k, v in info["nodes_by_kind"].items()) + ")")
    for key in ("convolutions", "linears", "batchnorms", "other_norms", "residual_adds", "concats", "multiplies"):
        table.add_row(key.replace("_", " "), str(info[key]))
    print_table(table)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
