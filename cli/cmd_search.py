"""``zenfx search SEED --out RUN_DIR``: Zen-NAS evolution of a real model under budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import InputSizeOpt, JsonOpt, KwargOpt, ResolutionOpt, err, handle_errors, out, print_json, print_table
from .executor_options import RayAddressOpt

if TYPE_CHECKING:
    from zenfx.search.run import SearchProgress, SearchResult

# zenfx.search.config's defaults, repeated so that --help needs no torch import (tests check they agree).
DEFAULT_POPULATION = 64
DEFAULT_CANDIDATES = 500
DEFAULT_ROUND = 16
DEFAULT_BATCH = 64

SeedArg = Annotated[str | None, typer.Argument(
    metavar="SEED",
    help="Seed model: any model spec (zoo:NAME, torchvision.models.resnet18, file.py:build) or a genome JSON; "
         "not needed with --resume (the run's config has it).")]


def _fmt(name: str, v: float | None) -> str:
    from zenfx.search.budget import fmt_figure

    return fmt_figure(name, v)


def _score(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def render(res: SearchResult) -> None:
    c = res.counters
    table = Table(title=f"{res.proxy} search: {c['proposed']} candidates ({c['scored']} scored, {c['rejected']} over "
                        f"budget, {c['failed']} failed) in {res.elapsed_s:.1f} s; stopped by {res.stopped}")
    table.add_column("", style="bold")
    for col in ("score", "params", "MACs", "depth", "memory", "latency"):
        table.add_column(col, justify="right")
    for label, row in (("seed", res.seed), ("best", res.best)):
        if not row:
            table.add_row(label, "—", "", "", "", "", "")
            continue
        f = row.get("figures") or {}
        table.add_row(label + ("" if label == "seed" else f" (#{row['id']})"), _score(row.get("score")),
                      _fmt("params", f.get("params")), _fmt("macs", f.get("macs")), _fmt("depth", f.get("depth")),
                      _fmt("memory", f.get("memory")), _fmt("latency", f.get("latency")))
    print_table(table)
    for note in res.notes:
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)
    shown = ", ".join(f"{k} {v}" for k, v in res.files.items() if k in ("best", "best_py", "history", "plots"))
    out.print(f"run folder: {res.run_dir} ({shown})", highlight=False)


def status_line(p: SearchProgress, width: int) -> str:
    """The live line, as full as ``width`` allows: shorter forms drop words, never cut a number."""
    eta = "" if p.eta_s is None else f", ETA {p.eta_s:.0f} s"
    total = f"/{p.candidates}" if p.candidates else ""
    best = f"best {_score(p.best)} (seed {_score(p.seed_score)})"
    forms = [f"search: {p.proposed}{total} candidates, {p.scored} scored, {p.rejected} rejected, {p.failed} failed, "
             f"{p.per_second:.2f}/s, {best}{eta}",
             f"search: {p.proposed}{total}, {p.scored} scored, {best}{eta}",
             f"{p.proposed}{total}, {best}{eta}",
             f"{p.proposed}{total}, best {_score(p.best)}"]
    return next((f for f in forms if len(f) <= width), forms[-1])


class _Live:
    """One live status line on stderr: scored, rejected, per second, best, ETA."""

    def __init__(self) -> None:
        self.status = err.status("search: starting ...", spinner="dots")

    def __enter__(self) -> _Live:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.__exit__(*exc)

    def __call__(self, p: SearchProgress) -> None:
        self.status.update(status_line(p, err.width - 2))  # the spinner takes two cells

    def say(self, msg: str) -> None:
        err.print(msg, highlight=False, markup=False)


@handle_errors
def search_cmd(
    ctx: typer.Context,
    out_dir: Annotated[str, typer.Option(
        "--out", "-o", help="Run folder (config, history, checkpoint, best genome, plots).")],
    seed_model: SeedArg = None,
    kwarg: KwargOpt = None,
    resolution: ResolutionOpt = None,
    input_size: InputSizeOpt = None,
    proxy: Annotated[str, typer.Option(
        "--proxy", "-p",
        help="Objective: any registered proxy (zen, zico, params, ...)."
    )] = "zen",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b",
        help="Inputs per scoring pass (the reference: 64)."
    )] = DEFAULT_BATCH,
    bn_stat: Annotated[str, typer.Option("--bn-stat", help="Zen BN statistic: official or batch.")] = "official",
    num_classes: Annotated[int, typer.Option(
        "--num-classes",
        help="Classes of the head appended for proxies that need logits."
    )] = 1000,
    data: Annotated[str | None, typer.Option("--data", help=".npz batches (x/y) for data-dependent proxies.")] = None,
    budget_params: Annotated[str | None, typer.Option("--budget-params", help="Max parameters, e.g. 1M, 500k.")] = None,
    budget_macs: Annotated[str | None, typer.Option("--budget-macs", help="Max MACs of one image, e.g. 400M.")] = None,
    budget_latency: Annotated[str | None, typer.Option(
        "--budget-latency",
        help="Max predicted latency per batch, e.g. 0.5ms (per-operator predictor, never a "
             "timing per candidate)."
    )] = None,
    budget_memory: Annotated[str | None, typer.Option(
        "--budget-memory",
        help="Max activation peak of one image, e.g. 64MB or 64MiB."
    )] = None,
    max_depth: Annotated[int | None, typer.Option(
        "--max-depth",
        help="Max convolutions on the VCNN main path (the reference's max_layers)."
    )] = None,
    latency_device: Annotated[str, typer.Option("--latency-device", help="Device of the latency predictor.")] = "cpu",
    latency_dtype: Annotated[str, typer.Option("--latency-dtype", help="dtype of the latency predictor.")] = "float32",
    latency_batch: Annotated[int, typer.Option("--latency-batch", help="Batch size the latency budget is for.")] = 1,
    population: Annotated[int, typer.Option(
        "--population", "-P",
        help="Population size (the paper: 512)."
    )] = DEFAULT_POPULATION,
    candidates: Annotated[int | None, typer.Option(
        "--candidates", "-n",
        help="Candidates to propose, scored or not (the paper: 480,000 for CIFAR). 0 with "
             "--time-limit: no count limit."
    )] = DEFAULT_CANDIDATES,
    time_limit: Annotated[str | None, typer.Option(
        "--time-limit",
        help="Stop after this much search time, e.g. 2h, 30m, 90s."
    )] = None,
    round_size: Annotated[int, typer.Option(
        "--round",
        help="Candidates proposed per round from the population as it stood at the round's "
             "start; same seed and round -> same history for any --workers."
    )] = DEFAULT_ROUND,
    seed: Annotated[int, typer.Option("--seed", help="Search seed (parents, edits, scoring).")] = 0,
    kinds: Annotated[str, typer.Option(
        "--kinds",
        help="Edit kinds, comma-separated: width, kernel, depth."
    )] = "width,kernel,depth",
    workers: Annotated[int | None, typer.Option(
        "--workers", "-j",
        help="Worker processes, one torch thread each (default: the machine's cores; 0: in "
             "this process)."
    )] = None,
    backend: Annotated[str, typer.Option("--backend", help="local (worker processes) or ray.")] = "local",
    ray_address: RayAddressOpt = None,
    device: Annotated[str, typer.Option(
        "--device",
        help="Where candidates are scored: cpu or cuda[:N]. With --backend ray each worker "
             "reserves one GPU of the cluster."
    )] = "cpu",
    resume: Annotated[bool, typer.Option(
        "--resume",
        help="Continue the run in --out exactly, with the seed and settings of its config.json (options "
             "given again must agree; candidates, time limit and workers may change)."
    )] = False,
    verify_latency: Annotated[bool, typer.Option(
        "--verify-latency",
        help="With --budget-latency: time the best network for real at the budget's setting (1 thread) and "
             "say whether it keeps the budget (the search itself only predicts).")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the plots.")] = False,
    json: JsonOpt = False,
) -> None:
    """Evolve SEED under budgets with the Zen-NAS algorithm and write RUN_DIR.

    Defaults suit a laptop CPU (population 64, 500 candidates); the paper's CIFAR search used
    population 512 and 480,000 proposals on GPUs. Each round proposes --round children (parent: the
    seed while the population has at most min(10, P-1) members, else a random member; 1 edit from the seed, 2
    from a member), scores those within budget (cheapest checks first; a structure is never scored
    twice), inserts them and drops the lowest beyond --population. A checkpoint follows every round;
    --resume continues exactly.
    """
    import zenfx
    from zenfx.search import search

    size = zenfx.parse_input_size(input_size, None, (3, 224, 224)) if input_size is not None else None
    n = None if (candidates == 0 and time_limit) else candidates
    args = dict(model=seed_model, kwargs=zenfx.parse_kwargs(kwarg), input_size=size, resolution=resolution,
                proxy=proxy, batch_size=batch_size, bn_stat=bn_stat.strip().lower(), num_classes=num_classes,
                data=data, budget_params=budget_params, budget_macs=budget_macs, budget_latency=budget_latency,
                budget_memory=budget_memory, max_depth=max_depth, latency_device=latency_device,
                latency_dtype=latency_dtype, latency_batch=latency_batch, population=population,
                round_size=round_size, candidates=n, time_limit=time_limit, seed=seed,
                kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), workers=workers,
                backend=backend, ray_address=ray_address, device=device)
    if resume:
        args = _resume_args(ctx, out_dir, args)
    elif seed_model is None:
        raise zenfx.UsageError("search needs a SEED model (or --resume with the --out of an earlier run)")
    with _Live() as live:
        res = search(out=out_dir, resume=resume, plots=not no_plots, progress=live, notify=live.say,
                     verify_latency=verify_latency, **args)
    if json:
        print_json(res.to_dict())
        return
    render(res)


# The CLI parameter behind each search() argument, where the names differ.
_FROM = {"model": "seed_model", "kwargs": "kwarg"}


def _resume_args(ctx: typer.Context, out_dir: str, mine: dict[str, Any]) -> dict[str, Any]:
    """A resume's arguments: the run's own settings (its config.json), overridden by the options
    given on this command line only (which must agree with the run where they fix its history)."""
    from zenfx.search.run import resume_arguments

    def given(name: str) -> bool:  # typer vendors its own click: the source is compared by name
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    args = resume_arguments(out_dir)
    if given("resolution") or given("input_size"):
        args.pop("input_size")  # the size asked for now is compared with the run's
    for key, value in mine.items():
        if given(_FROM.get(key, key)):
            args[key] = value
    return args


def register(app: typer.Typer) -> None:
    app.command("search")(search_cmd)
    # `zenfx bench search` lives in cli/bench_search.py; hooked onto the `bench` group owned by
    # cli/cmd_bench.py from here, so that file needs no edit.
    from .bench_search import search_bench_cmd
    from .cmd_bench import bench_app

    bench_app.command("search")(search_bench_cmd)
