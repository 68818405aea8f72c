"""``zenfx export MODEL --out net.py``: a standalone, torch-only Python module (and its weights)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ResolutionOpt,
    err,
    handle_errors,
    input_size_option,
    out,
    print_json,
)

ExportModelArg = Annotated[str, typer.Argument(
    help="A genome JSON file or a model spec: torchvision.models.resnet50, timm:NAME, path/file.py:callable, ...")]
OutOpt = Annotated[str, typer.Option("--out", "-o", help="The .py file to write (atomically).")]
WeightsOpt = Annotated[bool, typer.Option("--weights", help="Also write the state_dict beside it (net.py -> net.pt).")]
ClassNameOpt = Annotated[str | None, typer.Option(
    "--class-name", help="Name of the exported class (default: derived from the model).")]
CheckOpt = Annotated[bool, typer.Option(
    "--check/--no-check", help="Compare the export's eval and train outputs with the model's before writing.")]


@handle_errors
def export_cmd(
    model: ExportModelArg,
    out_path: OutOpt,
    weights: WeightsOpt = False,
    class_name: ClassNameOpt = None,
    kwarg: KwargOpt = None,
    resolution: ResolutionOpt = None,
    input_size: InputSizeOpt = None,
    check: CheckOpt = True,
    json: JsonOpt = False,
) -> None:
    """Write MODEL (a spec or a genome) as a standalone Python module that needs only torch.

    Layers are built in __init__, the forward reads like the graph, train/eval behaviour is kept.
    --weights also writes a state_dict (net.pt) that loads into the class with strict=True.
    Before writing, the export is checked against the model in eval and train mode."""
    import contextlib

    import zenfx
    from zenfx.export import export_model

    kwargs = zenfx.parse_kwargs(kwarg)
    size = input_size_option(input_size, resolution)  # -r 0 is an error, not the default
    with err.status("exporting ...", spinner="dots") if not json else contextlib.nullcontext():
        result = export_model(model, out_path, weights=weights, class_name=class_name, kwargs=kwargs,
                              input_size=size, check=check)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    if json:
        print_json(result)
        return
    checked = (f"eval and train outputs match the model (max abs diff {result.max_abs_diff:.2g})"
               if result.checked else "not checked")
    out.print(f"[bold]{result.class_name}[/] from {result.model}: {result.layers} layers, {result.params:,} parameters"
              + (", train/eval branch" if result.branched else ""), highlight=False)
    for path in result.files:
        out.print(f"  wrote {path}", highlight=False)
    out.print(f"  {checked}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
