"""The options of ``zenfx search``, one named type each, so the command's signature stays one line
per few options (and the help texts live together)."""

from __future__ import annotations

from typing import Annotated

import typer

# zenfx.search.config's defaults, repeated so that --help needs no torch import (tests check they agree).
DEFAULT_POPULATION = 64
DEFAULT_CANDIDATES = 500
DEFAULT_ROUND = 16
DEFAULT_BATCH = 64

OutDirOpt = Annotated[str, typer.Option(
        "--out", "-o", help="Run folder (config, history, checkpoint, best genome, plots).")]
ProxyOpt = Annotated[str, typer.Option(
        "--proxy", "-p",
        help="Objective: any registered proxy (zen, zico, params, ...), or a rank-aggregated one: az (AZ-NAS's "
             "four proxies) or A+B (zen+zico), ranked within the population plus each round's candidates."
    )]
BatchSizeOpt = Annotated[int, typer.Option(
        "--batch-size", "-b",
        help="Inputs per scoring pass (the reference: 64)."
    )]
BnStatOpt = Annotated[str, typer.Option("--bn-stat", help="Zen BN statistic: official or batch.")]
NumClassesOpt = Annotated[int, typer.Option(
        "--num-classes",
        help="Classes of the head appended for proxies that need logits."
    )]
DataOpt = Annotated[str | None, typer.Option("--data", help=".npz batches (x/y) for data-dependent proxies.")]
BudgetParamsOpt = Annotated[str | None, typer.Option("--budget-params", help="Max parameters, e.g. 1M, 500k.")]
BudgetMacsOpt = Annotated[str | None, typer.Option("--budget-macs", help="Max MACs of one image, e.g. 400M.")]
BudgetLatencyOpt = Annotated[str | None, typer.Option(
        "--budget-latency",
        help="Max predicted latency per batch at 1 thread, e.g. 0.5ms (calibrated per-operator predictor, "
             "never a timing per candidate; expected error on a CPU: mean 6%, 9% low to 15% high, see "
             "docs/search.md)."
    )]
BudgetMemoryOpt = Annotated[str | None, typer.Option(
        "--budget-memory",
        help="Max activation peak of one image, e.g. 64MB or 64MiB."
    )]
MaxDepthOpt = Annotated[int | None, typer.Option(
        "--max-depth",
        help="Max convolutions on the VCNN main path (the reference's max_layers)."
    )]
LatencyDeviceOpt = Annotated[str, typer.Option("--latency-device", help="Device of the latency predictor.")]
LatencyDtypeOpt = Annotated[str, typer.Option("--latency-dtype", help="dtype of the latency predictor.")]
LatencyBatchOpt = Annotated[int, typer.Option("--latency-batch", help="Batch size the latency budget is for.")]
PopulationOpt = Annotated[int, typer.Option(
        "--population", "-P",
        help="Population size (the paper: 512)."
    )]
CandidatesOpt = Annotated[int | None, typer.Option(
        "--candidates", "-n",
        help="Candidates to propose, scored or not (the paper: 480,000 for CIFAR). 0 with "
             "--time-limit: no count limit."
    )]
TimeLimitOpt = Annotated[str | None, typer.Option(
        "--time-limit",
        help="Stop after this much search time, e.g. 2h, 30m, 90s."
    )]
CpuLimitOpt = Annotated[str | None, typer.Option(
        "--cpu-limit",
        help="Stop after this many CPU seconds of the workers and the main process together, e.g. "
             "1600s, 30m (fair on a shared machine; the run ends with the round that crosses it)."
    )]
RoundSizeOpt = Annotated[int, typer.Option(
        "--round",
        help="Candidates proposed per round from the population as it stood at the round's "
             "start; same seed and round -> same history for any --workers."
    )]
SeedOpt = Annotated[int, typer.Option("--seed", help="Search seed (parents, edits, scoring).")]
TournamentOpt = Annotated[int | None, typer.Option(
        "--tournament",
        help="A parent is the best of this many uniform draws from the population (1: a uniform "
             "draw, the reference's rule). Default: see docs/search.md; on --resume, the run's own."
    )]
KindWeightsOpt = Annotated[str, typer.Option(
        "--kind-weights",
        help="Weights of the edit kinds, e.g. depth=2 (unnamed kinds weigh 1; 'uniform': all 1). "
             "On --resume, the run's own unless given."
    )]
CrownRepeatsOpt = Annotated[int | None, typer.Option(
        "--crown-repeats",
        help="Rescore a would-be best with this many repeats (as zenfx score -n does) and crown it "
             "only if the mean beats the best's: a best less fooled by one lucky draw (0: off)."
    )]
ScoreDrawsOpt = Annotated[str | None, typer.Option(
        "--score-draws",
        help="fixed: every candidate scored on one random draw (weights and inputs from --seed); "
             "per-candidate: each structure on its own draw, seeded by --seed and its structure, so a "
             "child does not inherit its parent's lucky draw. Default fixed; on --resume, the run's own."
    )]
KindsOpt = Annotated[str, typer.Option(
        "--kinds",
        help="Edit kinds, comma-separated: width, kernel, depth."
    )]
WorkersOpt = Annotated[int | None, typer.Option(
        "--workers", "-j",
        help="Worker processes, one torch thread each (default: the machine's cores; 0: in "
             "this process)."
    )]
BackendOpt = Annotated[str, typer.Option("--backend", help="local (worker processes) or ray.")]
DeviceOpt = Annotated[str, typer.Option(
        "--device",
        help="Where candidates are scored: cpu or cuda[:N]. With --backend ray each worker "
             "reserves one GPU of the cluster."
    )]
ResumeOpt = Annotated[bool, typer.Option(
        "--resume",
        help="Continue the run in --out exactly, with the seed and settings of its config.json (options "
             "given again must agree; candidates, time limit and workers may change)."
    )]
VerifyLatencyOpt = Annotated[bool, typer.Option(
        "--verify-latency",
        help="With --budget-latency: time the best network for real at the budget's setting (1 thread) and "
             "say whether it keeps the budget (the search itself only predicts).")]
NoPlotsOpt = Annotated[bool, typer.Option("--no-plots", help="Skip the plots.")]
