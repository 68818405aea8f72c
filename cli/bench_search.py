"""``zenfx bench search``: evolution vs random search on NATS-Bench-SSS or NAS-Bench-201 ground truth
(engines: ``zenfx.search.nats``, ``zenfx.search.nb201``). Registered under ``zenfx bench`` by
cli/cmd_bench.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, handle_errors, out, print_json, print_table, resolve_truth

if TYPE_CHECKING:
    from zenfx.search.nats import SearchBenchResult


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _title(res: SearchBenchResult) -> str:
    runs = f"{res.runs} runs x {res.candidates} candidates, population {res.population}, start {res.start}"
    if res.space == "nb201":
        return f"NAS-Bench-201 {res.dataset}, whole space ({res.in_budget:,} cells): {runs}"
    return f"NATS-Bench-SSS, params <= {res.budget_params:,} ({res.in_budget:,} architectures): {runs}"


def render(res: SearchBenchResult) -> None:
    table = Table(title=_title(res))
    table.add_column("proxy", style="bold")
    table.add_column("evolution acc %", justify="right")
    table.add_column("percentile", justify="right")
    table.add_column("random acc %", justify="right")
    table.add_column("percentile", justify="right")
    table.add_column("best in space" if res.budget_params is None else "best in budget", justify="right")
    table.add_column("seconds", justify="right")
    for p in res.proxies:
        e, r = p.evolution.to_dict(), p.random.to_dict()
        table.add_row(p.proxy, f"{_f(e['mean_accuracy'])} ± {_f(e['std_accuracy'])}",
                      _f(e["mean_percentile"], "{:.1f}"),
                      f"{_f(r['mean_accuracy'])} ± {_f(r['std_accuracy'])}", _f(r["mean_percentile"], "{:.1f}"),
                      f"{res.best_in_budget:.2f}", f"{p.seconds:.0f}")
    print_table(table)
    where = "in the space" if res.budget_params is None else "within the budget"
    out.print(f"best architecture {where}: {res.best_arch} ({res.best_in_budget:.2f}%); median "
              f"{res.median_accuracy_in_budget:.2f}%", highlight=False)
    for n in res.notes:
        out.print(f"note: {n}", style="dim", highlight=False, markup=False)


@handle_errors
def search_bench_cmd(
    space: Annotated[str, typer.Option("--space", help="Search space with ground truth: nats-sss or nb201.")
                     ] = "nats-sss",
    truth: Annotated[str, typer.Option(
        "--truth",
        help="Folder holding natsbench_sss.csv / nasbench201.csv (or the CSV)."
    )] = "../shared/data",
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d",
        help="nb201: whose test accuracy is the truth, cifar10 or cifar100 (NATS-SSS: cifar100 only).")] = "cifar100",
    proxy: Annotated[str, typer.Option("--proxy", "-p", help="Proxies, comma-separated.")] = "zen",
    budget_params: Annotated[str | None, typer.Option(
        "--budget-params",
        help="Max parameters (nats-sss; default: the space's median). nb201 has no budget."
    )] = None,
    candidates: Annotated[int, typer.Option(
        "--candidates", "-n",
        help="Candidates per run (evolution and random search alike)."
    )] = 100,
    runs: Annotated[int, typer.Option("--runs", "-R", help="Seeded runs per proxy.")] = 3,
    population: Annotated[int, typer.Option("--population", "-P", help="Evolution population.")] = 32,
    round_size: Annotated[int, typer.Option("--round", help="Candidates per evolution round.")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Inputs per scoring pass.")] = 64,
    resolution: Annotated[int | None, typer.Option(
        "--resolution", "-r", help="nb201: input resolution the proxies score at (default 32).")] = None,
    start: Annotated[str, typer.Option(
        "--start",
        help="Where evolution starts (auto: nats-sss the largest uniform C:C:C:C:C within budget; nb201 a cell "
             "without 'none' edges drawn with each run's seed).")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of run 0 (run r uses seed + r).")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")] = None,
    out_dir: Annotated[str, typer.Option(
        "--out",
        help="Folder for the evolution runs' folders."
    )] = "bench_search_runs",
    json: JsonOpt = False,
) -> None:
    """For R seeded runs per proxy: the true test accuracy of the network `zenfx search` returns on
    NATS-Bench-SSS (CIFAR-100, under a params budget) or NAS-Bench-201 (CIFAR-10/100, whole space),
    its percentile, next to random search with the same number of candidates and the best network."""
    names = [p.strip() for p in proxy.split(",") if p.strip()]
    common = dict(proxies=names, candidates=candidates, runs=runs, population=population, round_size=round_size,
                  batch_size=batch_size, start=start, seed=seed, workers=workers, out=out_dir)
    run = _engine(space.strip().lower(), dataset.strip().lower(), budget_params, resolution, common)
    with err.status("bench search ...", spinner="dots") as status:
        res = run(resolve_truth(truth), progress=lambda m: status.update(m))
    if json:
        print_json(res.to_dict())
        return
    render(res)


def _engine(space: str, dataset: str, budget_params: str | None, resolution: int | None,
            common: dict) -> Callable[..., SearchBenchResult]:
    """The bench of ``space`` with its arguments bound; refuses options the space does not take."""
    from zenfx.errors import UsageError

    if space == "nb201":
        from zenfx.search.nb201 import run_bench_search as nb201

        if budget_params is not None:
            raise UsageError("--budget-params is for nats-sss: bench search on nb201 ranks within the whole space")
        return partial(nb201, dataset=dataset, resolution=resolution or 32, **common)
    if space != "nats-sss":
        raise UsageError(f"bench search knows the spaces nats-sss and nb201, not {space!r}")
    if dataset != "cifar100" or resolution is not None:
        raise UsageError("bench search on nats-sss is CIFAR-100 at 32x32 (--dataset cifar100, no --resolution)")
    from zenfx.search.nats import run_bench_search as nats

    return partial(nats, budget_params=budget_params, **common)
