"""``zenfx search SEED --out RUN_DIR``: Zen-NAS evolution of a real model under budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from zenfx.errors import SearchFailedError

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ResolutionOpt,
    err,
    fail,
    handle_errors,
    out,
    print_json,
    print_table,
)
from .executor_options import RayAddressOpt
from .search_options import (  # noqa: F401 - DEFAULT_*: re-exported for the tests that compare them
    DEFAULT_BATCH,
    DEFAULT_CANDIDATES,
    DEFAULT_POPULATION,
    DEFAULT_ROUND,
    BackendOpt,
    BatchSizeOpt,
    BnStatOpt,
    BudgetLatencyOpt,
    BudgetMacsOpt,
    BudgetMemoryOpt,
    BudgetParamsOpt,
    CandidatesOpt,
    CpuLimitOpt,
    CrownRepeatsOpt,
    DataOpt,
    DeviceOpt,
    KindsOpt,
    KindWeightsOpt,
    LatencyBatchOpt,
    LatencyDeviceOpt,
    LatencyDtypeOpt,
    MaxDepthOpt,
    NoPlotsOpt,
    NumClassesOpt,
    OutDirOpt,
    PopulationOpt,
    ProxyOpt,
    ResumeOpt,
    RoundSizeOpt,
    ScoreDrawsOpt,
    SeedOpt,
    TimeLimitOpt,
    TournamentOpt,
    VerifyLatencyOpt,
    WorkersOpt,
)

if TYPE_CHECKING:
    from zenfx.search.run import SearchProgress, SearchResult


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
def search_cmd(ctx: typer.Context, out_dir: OutDirOpt, seed_model: SeedArg = None, kwarg: KwargOpt = None,
               resolution: ResolutionOpt = None, input_size: InputSizeOpt = None, proxy: ProxyOpt = "zen",
               batch_size: BatchSizeOpt = DEFAULT_BATCH, bn_stat: BnStatOpt = "official",
               num_classes: NumClassesOpt = 1000, data: DataOpt = None, budget_params: BudgetParamsOpt = None,
               budget_macs: BudgetMacsOpt = None, budget_latency: BudgetLatencyOpt = None,
               budget_memory: BudgetMemoryOpt = None, max_depth: MaxDepthOpt = None,
               latency_device: LatencyDeviceOpt = "cpu", latency_dtype: LatencyDtypeOpt = "float32",
               latency_batch: LatencyBatchOpt = 1, population: PopulationOpt = DEFAULT_POPULATION,
               candidates: CandidatesOpt = DEFAULT_CANDIDATES, time_limit: TimeLimitOpt = None,
               cpu_limit: CpuLimitOpt = None, round_size: RoundSizeOpt = DEFAULT_ROUND, seed: SeedOpt = 0,
               tournament: TournamentOpt = None, kind_weights: KindWeightsOpt = "default",
               crown_repeats: CrownRepeatsOpt = None, score_draws: ScoreDrawsOpt = None,
               kinds: KindsOpt = "width,kernel,depth",
               workers: WorkersOpt = None, backend: BackendOpt = "local", ray_address: RayAddressOpt = None,
               device: DeviceOpt = "cpu", resume: ResumeOpt = False, verify_latency: VerifyLatencyOpt = False,
               no_plots: NoPlotsOpt = False, json: JsonOpt = False) -> None:
    """Evolve SEED under budgets with the Zen-NAS algorithm and write RUN_DIR.

    Defaults suit a laptop CPU (population 64, 500 candidates); the paper's CIFAR search used
    population 512 and 480,000 proposals on GPUs. Each round proposes --round children (parent: the
    seed while the population has at most min(10, P-1) members, else the best of --tournament random
    members; 1 edit from the seed, 2 from a member, kinds drawn with --kind-weights), scores those
    within budget (cheapest checks first; a structure is never scored twice), inserts them and drops
    the lowest beyond --population. A checkpoint follows every round; --resume continues exactly.
    """
    opts = dict(locals())
    import zenfx
    from zenfx.search import search

    args = _search_arguments(opts)
    if resume:
        args = _resume_args(ctx, out_dir, args)
    elif seed_model is None:
        raise zenfx.UsageError("search needs a SEED model (or --resume with the --out of an earlier run)")
    with _Live() as live:
        res = search(out=out_dir, resume=resume, plots=not no_plots, progress=live, notify=live.say,
                     verify_latency=verify_latency, **args)
    _report(res, json)


def _search_arguments(o: dict[str, Any]) -> dict[str, Any]:
    """``zenfx.search`` arguments from the command's options (``o``: the command's locals)."""
    import zenfx

    size = zenfx.parse_input_size(o["input_size"], None, (3, 224, 224)) if o["input_size"] is not None else None
    n = None if (o["candidates"] == 0 and (o["time_limit"] or o["cpu_limit"])) else o["candidates"]
    same = ("resolution", "proxy", "batch_size", "num_classes", "data", "budget_params", "budget_macs",
            "budget_latency", "budget_memory", "max_depth", "latency_device", "latency_dtype", "latency_batch",
            "population", "round_size", "time_limit", "cpu_limit", "seed", "tournament", "kind_weights",
            "crown_repeats", "score_draws", "workers", "backend", "ray_address", "device")
    return dict(model=o["seed_model"], kwargs=zenfx.parse_kwargs(o["kwarg"]), input_size=size,
                bn_stat=o["bn_stat"].strip().lower(), candidates=n,
                kinds=tuple(k.strip() for k in o["kinds"].split(",") if k.strip()), **{k: o[k] for k in same})


def _report(res: SearchResult, json: bool) -> None:
    """The summary (table or JSON); a run in which every candidate failed exits 6 after it."""
    if json:
        if res.all_failed:
            fail(SearchFailedError(res.failure_message()), json_mode=True, **res.to_dict())
        print_json(res.to_dict())
        return
    render(res)
    if res.all_failed:
        fail(SearchFailedError(res.failure_message()))


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
