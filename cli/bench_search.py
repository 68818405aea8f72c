"""``zenfx bench search``: evolution vs random search on NATS-Bench-SSS ground truth (engine:
``zenfx.search.nats``). Registered under ``zenfx bench`` by cli/cmd_bench.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, handle_errors, out, print_json, print_table, resolve_truth

if TYPE_CHECKING:
    from zenfx.search.nats import SearchBenchResult


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def render(res: SearchBenchResult) -> None:
    table = Table(title=f"NATS-Bench-SSS, params <= {res.budget_params:,} ({res.in_budget:,} architectures): "
                        f"{res.runs} runs x {res.candidates} candidates, population {res.population}, "
                        f"start {res.start}")
    table.add_column("proxy", style="bold")
    table.add_column("evolution acc %", justify="right")
    table.add_column("percentile", justify="right")
    table.add_column("random acc %", justify="right")
    table.add_column("percentile", justify="right")
    table.add_column("best in budget", justify="right")
    table.add_column("seconds", justify="right")
    for p in res.proxies:
        e, r = p.evolution.to_dict(), p.random.to_dict()
        table.add_row(p.proxy, f"{_f(e['mean_accuracy'])} ± {_f(e['std_accuracy'])}",
                      _f(e["mean_percentile"], "{:.1f}"),
                      f"{_f(r['mean_accuracy'])} ± {_f(r['std_accuracy'])}", _f(r["mean_percentile"], "{:.1f}"),
                      f"{res.best_in_budget:.2f}", f"{p.seconds:.0f}")
    print_table(table)
    out.print(f"best architecture within the budget: {res.best_arch} ({res.best_in_budget:.2f}%); median "
              f"{res.median_accuracy_in_budget:.2f}%", highlight=False)
    for n in res.notes:
        out.print(f"note: {n}", style="dim", highlight=False, markup=False)


@handle_errors
def search_bench_cmd(
    space: Annotated[str, typer.Option("--space", help="Search space with ground truth: nats-sss.")] = "nats-sss",
    truth: Annotated[str, typer.Option(
        "--truth",
        help="Folder holding natsbench_sss.csv (or the CSV)."
    )] = "../shared/data",
    proxy: Annotated[str, typer.Option("--proxy", "-p", help="Proxies, comma-separated.")] = "zen",
    budget_params: Annotated[str | None, typer.Option(
        "--budget-params",
        help="Max parameters (default: the space's median)."
    )] = None,
    candidates: Annotated[int, typer.Option(
        "--candidates", "-n",
        help="Candidates per run (evolution and random search alike)."
    )] = 100,
    runs: Annotated[int, typer.Option("--runs", "-R", help="Seeded runs per proxy.")] = 3,
    population: Annotated[int, typer.Option("--population", "-P", help="Evolution population.")] = 32,
    round_size: Annotated[int, typer.Option("--round", help="Candidates per evolution round.")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Inputs per scoring pass.")] = 64,
    start: Annotated[str, typer.Option(
        "--start",
        help="Widths the evolution starts from (auto: the largest uniform C:C:C:C:C within budget).")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of run 0 (run r uses seed + r).")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")] = None,
    out_dir: Annotated[str, typer.Option(
        "--out",
        help="Folder for the evolution runs' folders."
    )] = "bench_search_runs",
    json: JsonOpt = False,
) -> None:
    """For R seeded runs per proxy: the true CIFAR-100 accuracy of the network `zenfx search` returns
    on NATS-Bench-SSS under a params budget, its percentile within the budget, next to random search
    with the same number of candidates and the best network within the budget."""
    from zenfx.errors import UsageError
    from zenfx.search.nats import run_bench_search

    if space.strip().lower() != "nats-sss":
        raise UsageError(f"bench search knows the space nats-sss, not {space!r}")
    names = [p.strip() for p in proxy.split(",") if p.strip()]
    with err.status("bench search ...", spinner="dots") as status:
        res = run_bench_search(resolve_truth(truth), proxies=names, budget_params=budget_params, candidates=candidates,
                               runs=runs,
                               population=population, round_size=round_size, batch_size=batch_size, start=start,
                               seed=seed, workers=workers, out=out_dir, progress=lambda m: status.update(m))
    if json:
        print_json(res.to_dict())
        return
    render(res)
