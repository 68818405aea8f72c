"""``zenfx report MODEL``: params, MACs (and FLOPs = 2 x MACs), activation memory, latency."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ModelArg,
    ResolutionOpt,
    above,
    at_least,
    err,
    handle_errors,
    input_size_option,
    out,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from zenfx.cost.report import CostReport

# zenfx.cost.report.DEFAULT_DEPTH, repeated so that `zenfx report --help` needs no torch import
# (tests/test_cli_startup.py checks they agree).
DEFAULT_DEPTH = 2


def _si(n: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def _bytes(n: float) -> str:
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{int(n)} B"


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms"


def _render(rep: CostReport) -> None:
    title = f"{rep.model} ({rep.source}{', VCNN graph' if rep.graph == 'vcnn' else ''}) " \
            f"@ {rep.batch_size}x{'x'.join(map(str, rep.input_size))} {rep.dtype}"
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("params", f"{rep.params.total:,} (trainable {rep.params.trainable:,})")
    table.add_row("MACs / image", f"{rep.macs.total:,} ({_si(rep.macs.total, 'MACs')}; "
                                  f"FLOPs = 2*MACs = {_si(rep.macs.flops, 'FLOPs')}) [counter: {rep.macs.counter}]")
    if rep.batch_size > 1:
        table.add_row("MACs / batch", f"{rep.macs_batch:,} ({_si(rep.macs_batch, 'MACs')})")
    _memory_rows(table, rep)
    _latency_rows(table, rep)
    if rep.macs.unsupported_ops:
        table.add_row("not counted (fvcore)", ", ".join(f"{k} x{v}" for k, v in rep.macs.unsupported_ops.items()))
    print_table(table)
    if rep.depth is not None and rep.layers:
        print_table(_layer_table(rep))
    for note in rep.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def _memory_rows(table: Table, rep: CostReport) -> None:
    """The activation peak and largest activation rows, when the report measured memory."""
    if rep.memory is None:
        return
    m = rep.memory
    table.add_row("activation peak", f"{_bytes(m.peak_bytes)} ({m.peak_bytes:,} B, batch {rep.batch_size}, "
                                     f"{m.dtype}; at {m.peak_node})")
    shape = "x".join(map(str, m.largest_shape)) if m.largest_shape else "?"
    table.add_row("largest activation", f"{_bytes(m.largest_bytes)} ({m.largest_node}, {shape})")


def _latency_rows(table: Table, rep: CostReport) -> None:
    """The measured latency rows (--latency) and the predictor's row (--predict), each when asked for."""
    if rep.latency is not None:
        lat = rep.latency
        table.add_row("latency / batch", f"median {_ms(lat.median_s)}, IQR {_ms(lat.iqr_s)}")
        table.add_row("latency / image", f"median {_ms(lat.per_image_median_s)}, IQR {_ms(lat.per_image_iqr_s)}")
        table.add_row("latency setting", f"{lat.device} ({lat.device_name}), {lat.dtype}, threads {lat.threads}, "
                                         f"warm-up {lat.warmup}, {lat.blocks} blocks x {lat.runs_per_block} runs"
                                         + (", thread CPU-time clock" if lat.clock == "thread" else ""))
    if rep.predicted is not None:
        p = rep.predicted
        table.add_row("predicted latency", f"{_ms(p.total_s)} / batch, {_ms(p.per_image_s)} / image, "
                                           f"threads {p.threads}")
        how = "calibrated" if p.calibrated else "not calibrated"
        table.add_row("prediction detail", f"operators {_ms(p.raw_s)} + module-call overhead {_ms(p.overhead_s)} "
                                           f"({how}; {len(p.nodes)} ops, {p.measured} newly measured)")


def _layer_table(rep: CostReport) -> Table:
    """The per-layer breakdown (--per-layer / --depth), with a predicted-ms column when any layer has one."""
    lt = Table(title=f"per layer (depth {rep.depth})")
    lt.add_column("module")
    lt.add_column("type")
    lt.add_column("params", justify="right")
    lt.add_column("MACs", justify="right")
    lt.add_column("MACs %", justify="right")
    lt.add_column("activations", justify="right")
    lt.add_column("output shape")
    with_pred = any(r.predicted_ms is not None for r in rep.layers)
    if with_pred:
        lt.add_column("pred. ms", justify="right")
    total = max(rep.macs.total, 1)
    for r in rep.layers:
        name = ("  " * max(r.depth - 1, 0) + r.path) if r.path else "(total)"
        shape = "x".join(map(str, r.output_shape)) if isinstance(r.output_shape, tuple) and all(
            isinstance(d, int) for d in r.output_shape) else ("" if r.output_shape is None else str(r.output_shape))
        row = [name, r.type, f"{r.params:,}", _si(r.macs), f"{100 * r.macs / total:.1f}",
               _bytes(r.activation_bytes), shape]
        if with_pred:
            row.append("" if r.predicted_ms is None else f"{r.predicted_ms:.3f}")
        lt.add_row(*row)
    return lt


BatchSizeOpt = Annotated[int, typer.Option(
        "--batch-size", "-b", help="Batch size for activation memory and latency.")]
DepthOpt = Annotated[int | None, typer.Option(
        "--depth", help=f"Group the breakdown to depth K of the module hierarchy (default {DEFAULT_DEPTH}; implies "
                        f"--per-layer).")]
PredictOpt = Annotated[bool, typer.Option(
        "--predict",
        help="Add the per-operator latency predictor's estimate (table cached under ~/.cache/zenfx).")]
DtypeOpt = Annotated[str, typer.Option(
        "--dtype", help="float32, float16 or bfloat16 (activation bytes and latency).")]
ThreadsOpt = Annotated[int | None, typer.Option(
        "--threads", help="Pin the intra-op thread count for latency, at least 1 (default: torch's current).")]
CounterOpt = Annotated[str, typer.Option(
        "--counter", help="MAC counter: torch (FlopCounterMode, default) or fvcore (cross-check).")]
VcnnOpt = Annotated[bool, typer.Option(
        "--vcnn", help="Report the VCNN-converted graph instead of the original.")]
ClockOpt = Annotated[str, typer.Option(
        "--clock",
        help="wall (default) or thread: the calling thread's CPU time, for --threads 1 on a shared CPU.")]
MinRunTimeOpt = Annotated[float, typer.Option(
        "--min-run-time", help="Seconds of timed runs for --latency (greater than 0).")]


PerLayerOpt = Annotated[bool, typer.Option("--per-layer", help="Add a per-module breakdown table.")]
LatencyOpt = Annotated[bool, typer.Option("--latency", help="Measure latency with torch.utils.benchmark.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda (latency).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Untimed forward passes before timing (--latency).")]


@handle_errors
def report_cmd(model: ModelArg, kwarg: KwargOpt = None, resolution: ResolutionOpt = None,
               input_size: InputSizeOpt = None, batch_size: BatchSizeOpt = 1, per_layer: PerLayerOpt = False,
               depth: DepthOpt = None, latency: LatencyOpt = False, predict: PredictOpt = False,
               device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", threads: ThreadsOpt = None,
               counter: CounterOpt = "torch", vcnn: VcnnOpt = False, clock: ClockOpt = "wall",
               min_run_time: MinRunTimeOpt = 1.0, warmup: WarmupOpt = 10, json: JsonOpt = False) -> None:
    """Params, MACs (FLOPs = 2*MACs), activation memory and, with --latency, measured latency of MODEL."""
    import zenfx
    from zenfx.cost.report import cost_report

    _quiet_cuda_warning(device)
    _check_ranges(batch_size, depth, threads, warmup, min_run_time)
    kwargs = zenfx.parse_kwargs(kwarg)
    size = input_size_option(input_size, resolution)
    k = depth if depth is not None else (DEFAULT_DEPTH if per_layer else None)
    if latency and not json:
        err.print("measuring latency ...", highlight=False)
    rep = cost_report(model, kwargs, size, batch_size, dtype=dtype, counter=counter, depth=k, latency=latency,
                      predict=predict, device=device, threads=threads, vcnn=vcnn, min_run_time=min_run_time,
                      clock=clock, warmup=warmup)
    if json:
        print_json(rep.to_dict())
        return
    _render(rep)
    if (latency or predict) and threads is None and device.strip().lower() == "cpu":
        n = rep.latency.threads if rep.latency is not None else rep.predicted.threads if rep.predicted else None
        if n is not None and n != 1:
            what = "timed and predicted" if latency and predict else "timed" if latency else "predicted"
            out.print(f"note: {what} for {n} threads (torch's default here); a search's "
                      "--budget-latency assumes 1 thread: add --threads 1 to compare with it",
                      style="dim", highlight=False, markup=False)


def _quiet_cuda_warning(device: str) -> None:
    """On the CPU: torch.utils.benchmark imports cpp_extension, which warns "No CUDA runtime is found"
    on a CUDA-less machine: noise on a CPU measurement."""
    if device.strip().lower() != "cpu":
        return
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def _check_ranges(batch_size: int, depth: int | None, threads: int | None, warmup: int, min_run_time: float) -> None:
    """Refuse out-of-range numeric options before anything is loaded (exit 2, naming the flag)."""
    at_least("--batch-size", batch_size, 1)
    at_least("--depth", depth, 0)
    at_least("--threads", threads, 1, why="omit it for torch's current count")
    at_least("--warmup", warmup, 0)
    above("--min-run-time", min_run_time, 0, why="seconds of timed runs")


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
