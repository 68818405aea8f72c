"""``zenfx bench proxies``: rank correlation of zero-shot proxies with NAS-Bench-201 / NATS-Bench-SSS
accuracies (engine: ``zenfx.bench``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import JsonOpt, err, handle_errors, out, print_json, print_table, resolve_truth
from .executor_options import BackendOpt, RayAddressOpt

if TYPE_CHECKING:
    from zenfx.bench import BenchResult

# zenfx.bench.DEFAULT_PROXIES, repeated so that --help imports no torch (a test checks they agree).
DEFAULT_PROXIES = ("params", "flops", "synflow", "zen", "naswot", "grad_norm", "snip", "fisher", "jacob_cov",
                   "grasp", "zico")
_DEFAULT_PROXIES_ARG = ",".join(DEFAULT_PROXIES)

bench_app = typer.Typer(name="bench", no_args_is_help=True, help="Benchmarks of zenfx against published results.")


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _fmt_pub(t: float | None, r: float | None) -> str:
    return "—" if t is None or r is None else f"{t:.2f} / {r:.2f}"


def render(res: BenchResult) -> None:
    c = res.config
    title = (f"{c.space} {c.dataset}: {res.archs_scored} of {res.archs_total} sampled architectures "
             f"(seed {c.seed}, batch {c.batch_size}, {c.resolution}x{c.resolution}, "
             f"{'Gaussian inputs + random labels' if c.data is None else c.data})")
    table = Table(title=title)
    table.add_column("proxy", style="bold")
    table.add_column("n", justify="right")
    table.add_column("Kendall τ", justify="right")
    table.add_column("Spearman ρ", justify="right")
    table.add_column("published τ / ρ", justify="right")
    table.add_column("s / arch", justify="right")
    table.add_column("data")
    for p in res.correlations:
        data = "gaussian*" if p.gaussian_data else ("—" if not _needs_data(p.proxy) else "batches")
        n = str(p.n) + (f" ({p.failures} failed)" if p.failures else "")
        table.add_row(p.proxy, n, _fmt(p.kendall_tau), _fmt(p.spearman_rho),
                      _fmt_pub(p.published_tau, p.published_rho),
                      "—" if p.mean_seconds is None else f"{p.mean_seconds:.3f}", data)
    print_table(table)
    if any(p.gaussian_data for p in res.correlations):
        out.print("* data-dependent proxy on Gaussian inputs with random labels (published: CIFAR batches)",
                  highlight=False)
    if res.mean_seconds_per_arch is not None:
        out.print(f"mean seconds per architecture (all proxies): {res.mean_seconds_per_arch:.3f}", highlight=False)
    for n in res.notes:
        out.print(f"note: {n}", style="dim", highlight=False, markup=False)
    if res.out:
        out.print(f"per-architecture scores: {res.out}/scores.jsonl, {res.out}/scores.csv", highlight=False)


def _needs_data(name: str) -> bool:
    from zenfx.proxies.aggregate import members_of
    from zenfx.proxies.base import get_proxy

    return any(get_proxy(m).needs_data for m in members_of(name))


SpaceOpt = Annotated[str, typer.Option(
    "--space", help="nb201 (NAS-Bench-201 cells) or nats-sss (NATS-Bench size space).")]
TruthOpt = Annotated[str, typer.Option(
    "--truth", help="Folder holding nasbench201.csv / natsbench_sss.csv (and README.md with the published "
                    "figures), or the CSV itself; relative to the current directory. Default: $ZENFX_TRUTH, else "
                    "../shared/data, else the shared/data folder beside the zenfx checkout.")]
DatasetOpt = Annotated[str, typer.Option(
    "--dataset", help="cifar10, cifar100 or imagenet16-120 (nats-sss: cifar100, imagenet16-120); the truth CSV "
                      "needs its column (cifar10_test, cifar100_test, imagenet16_120_test).")]
ResolutionOpt = Annotated[int | None, typer.Option(
    "--resolution", "-r", help="Input resolution R (3xRxR); default: the dataset's own (32 for CIFAR, 16 for "
                               "ImageNet16-120).")]
SampleOpt = Annotated[int, typer.Option(
    "--sample", help="Architectures to score (a seeded sample; smaller samples are prefixes of larger ones).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Sample and weight-init seed.")]
ProxiesOpt = Annotated[str, typer.Option(
    "--proxies", "-p", help="Comma-separated proxies; az (AZ-NAS's four) or A+B (zen+zico) adds the rank-aggregated "
                            "objective over the scored sample next to its members.")]
BatchOpt = Annotated[int, typer.Option(
    "--batch-size", "-b", help="Inputs per batch for data-dependent proxies and Zen.")]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help=".npz batch file (x/y) instead of Gaussian inputs with random labels.")]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", "-j", "--workers", help="Workers (one torch thread each); 1 on the local backend: this process.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="Torch threads of the scoring process when --jobs 1.")]
OutOpt = Annotated[str | None, typer.Option(
    "--out", help="Folder for scores.jsonl/.csv (written as architectures finish), config.json, correlations.json; "
                  "a folder holding another run's scores is refused unless --resume.")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue or extend the run in --out (architectures already scored are skipped).")]
ReportOnlyOpt = Annotated[bool, typer.Option(
    "--report-only", help="Score nothing: report on what --out holds for this sample.")]


@handle_errors
def proxies_cmd(
    space: SpaceOpt = "nb201",
    truth: TruthOpt = "../shared/data",
    dataset: DatasetOpt = "cifar10",
    resolution: ResolutionOpt = None,
    sample: SampleOpt = 100,
    seed: SeedOpt = 0,
    proxies: ProxiesOpt = _DEFAULT_PROXIES_ARG,
    batch_size: BatchOpt = 64,
    data: DataOpt = None,
    jobs: JobsOpt = 1,
    backend: BackendOpt = "local",
    ray_address: RayAddressOpt = None,
    device: Annotated[str, typer.Option(
        "--device", help="Where cells are scored: cpu or cuda[:N] (--backend ray: one GPU per worker).")] = "cpu",
    threads: ThreadsOpt = 1,
    out_dir: OutOpt = None,
    resume: ResumeOpt = False,
    report_only: ReportOnlyOpt = False,
    json: JsonOpt = False,
) -> None:
    """Score a seeded sample of architectures with zero-shot proxies; print Kendall τ and Spearman ρ
    against trained accuracy, next to the published figures (ZiCo, ICLR 2023, Tables 1 and 3)."""
    import torch

    from zenfx.bench import BenchConfig, run_bench

    torch.set_num_threads(max(1, threads))
    names = tuple(p.strip() for p in proxies.split(",") if p.strip())
    cfg = BenchConfig(space=space.strip().lower(), dataset=dataset.strip().lower(), sample=sample, seed=seed,
                      proxies=names, batch_size=batch_size, data=data, resolution=resolution, device=device)
    if report_only and not out_dir:
        from zenfx.errors import UsageError

        raise UsageError("--report-only needs --out")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as prog:
        task = prog.add_task(f"{cfg.space} {cfg.dataset}", total=None)

        def progress(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        res = run_bench(cfg, resolve_truth(truth), out=out_dir, resume=resume, jobs=jobs, progress=progress,
                        report_only=report_only,
                        backend=backend, ray_address=ray_address)
    if json:
        print_json(res.to_dict())
        return
    render(res)


def register(app: typer.Typer) -> None:
    bench_app.command("proxies")(proxies_cmd)
    app.add_typer(bench_app, name="bench")
