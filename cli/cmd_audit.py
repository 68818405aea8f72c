"""``zenfx audit [torchvision|timm|MODEL ...]``: VCNN verdicts over whole zoos, one row per model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import JsonOpt, err, handle_errors, print_json, print_table
from .executor_options import BackendOpt, RayAddressOpt

if TYPE_CHECKING:
    from zenfx.audit import AuditSummary

TargetsArg = Annotated[list[str] | None, typer.Argument(
    help="torchvision, timm (whole registries) and/or model specs; default: both registries.")]
FilterOpt = Annotated[str | None, typer.Option(
    "--filter", help="Only models whose name matches this glob (e.g. 'resnet*').")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Audit at most N models (after --filter).")]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", "-j", "--workers", help="Workers (0: in this process, no timeout).")]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds per model before it is recorded as a timeout.")]
CsvOpt = Annotated[Path | None, typer.Option(
    "--csv", help="Append one row per model to this CSV as models finish (a CSV holding rows needs --resume).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Skip models already in the --csv file (a row cut by a kill is audited again).")]
RowsOpt = Annotated[bool | None, typer.Option(
    "--rows/--no-rows", help="Print the per-model table (default: when at most 200 models).")]

_STYLE = {"convertible": "green", "convertible_with_approximations": "yellow", "not_convertible": "red",
          "error": "magenta"}


def _render(summary: AuditSummary, rows: bool | None) -> None:
    show_rows = rows if rows is not None else len(summary.rows) <= 200
    if show_rows and summary.rows:
        table = Table(title="VCNN audit")
        for col in ("source", "name", "tracer", "verdict", "changes", "BN", "params", "s", "reasons / error"):
            table.add_column(col, overflow="fold")
        for r in sorted(summary.rows, key=lambda r: (r["source"], r["name"])):
            changes = ", ".join(f"{k[2:]} {v}" for k, v in r.items() if k.startswith("n_") and v)
            why = r.get("error") or r.get("reasons") or ""
            style = _STYLE.get(r["verdict"], "")
            table.add_row(r["source"], r["name"], r.get("tracer") or "", f"[{style}]{r['verdict']}[/]", changes,
                          str(r.get("bn_count", "")), f"{int(r.get('params') or 0):,}", f"{float(r['seconds']):.1f}",
                          why[:160])
        print_table(table)
    s = Table(title="summary", show_header=False)
    s.add_column("what", style="bold")
    s.add_column("value")
    skipped = f" (+{summary.skipped} already in the CSV)" if summary.skipped else ""
    s.add_row("models", f"{len(summary.rows)}{skipped}")
    for verdict, n in summary.by_verdict.items():
        s.add_row(verdict, str(n))
    for reason, n in summary.top_reasons():
        s.add_row("[red]blocking[/]", f"{n} x {reason}")
    s.add_row("wall time", f"{summary.wall_seconds:.1f} s ({summary.models_per_second:.2f} models/s)")
    print_table(s)


@handle_errors
def audit_cmd(targets: TargetsArg = None, filter: FilterOpt = None, limit: LimitOpt = None, jobs: JobsOpt = 1,
              timeout: TimeoutOpt = 120.0, csv: CsvOpt = None, resume: ResumeOpt = False,
              backend: BackendOpt = "local", ray_address: RayAddressOpt = None, json: JsonOpt = False,
              rows: RowsOpt = None) -> None:
    """Convert every model of the named zoos and report one verdict row per model plus a summary."""
    from zenfx.audit import audit_models
    from zenfx.errors import UsageError

    if resume and csv is None:
        raise UsageError("--resume needs --csv PATH (the file to resume from)")
    if jobs < 0 or (limit is not None and limit <= 0) or timeout <= 0:
        raise UsageError("--jobs must be >= 0, --limit and --timeout > 0")
    with Progress(TextColumn("[bold]audit[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True) as progress:
        task = progress.add_task("", total=None)

        def on_row(row: dict[str, Any], done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=f"{row['name']}: {row['verdict']}")

        summary = audit_models(targets or ["torchvision", "timm"], filter_glob=filter, limit=limit, jobs=jobs,
                               timeout=timeout, csv_path=str(csv) if csv else None, resume=resume, progress=on_row,
                               backend=backend, ray_address=ray_address)
    if json:
        print_json({"summary": summary.to_dict(include_rows=False), "rows": summary.rows})
    else:
        _render(summary, rows)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_cmd)
