"""``zenfx score MODEL``: Zen-Score (and other proxies) of a model's vanilla-CNN form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ResolutionOpt,
    err,
    handle_errors,
    out,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from zenfx.scoring import ScoreResult

# zenfx.scoring's defaults, repeated here so that `zenfx score --help` needs no torch import
# (tests/test_cli_startup.py checks they agree).
DEFAULT_BATCH_SIZE = 16
DEFAULT_REPEAT = 4

ModelsArg = Annotated[list[str], typer.Argument(
    help="Model spec(s): torchvision.models.resnet50, timm:NAME, torchvision:NAME, NAME, pkg.mod:attr, "
         "path/file.py:callable. Several models are scored alike and ranked by the first --proxy item.")]
ProxyOpt = Annotated[str, typer.Option(
    "--proxy", "-p", help="Proxies, comma-separated: zen, phi, params, flops (and any other registered proxy); "
                          "az (AZ-NAS's four proxies) or A+B (e.g. zen+zico) is a rank-aggregated objective over "
                          "the models given.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Gaussian inputs per forward pass.")]
RepeatOpt = Annotated[int, typer.Option(
    "--repeat", "-n", help="Repeats with fresh weights and inputs; the interval is 1.96*std/sqrt(n).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Same seed, same numbers (bit for bit on one machine).")]
BnStatOpt = Annotated[str, typer.Option(
    "--bn-stat", help="BN statistic for Zen: official (the reference code's running_var after the two passes) or batch "
                      "(the paper's mini-batch variance).")]
GammaOpt = Annotated[float, typer.Option("--mixup-gamma", help="Perturbation size gamma of Zen's x + gamma*eps.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda[:N].")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32, float16 (cuda only) or bfloat16.")]
GraphOpt = Annotated[str | None, typer.Option(
    "--graph", help="Score every proxy on this graph (original or vcnn) instead of the one its reference uses.")]
ClassesOpt = Annotated[int, typer.Option(
    "--num-classes", help="Classes of the GAP+Linear head appended for proxies that need logits.")]


def _fmt_value(name: str, value: float) -> str:
    if name == "params":
        return f"{value / 1e6:.3f} M"
    if name == "flops":
        return f"{value / 1e9:.3f} G MACs"
    return _num(value)


def _num(value: float) -> str:
    """Four decimals for ordinary magnitudes, scientific notation for huge/tiny ones (synflow)."""
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4e}"
    return f"{value:.4f}"


def _fmt_score(name: str, value: float, ci: float | None) -> str:
    text = _fmt_value(name, value)
    if ci is None:
        return text
    return f"{text} ± {_fmt_value(name, ci) if name in ('params', 'flops') else _num(ci)}"


def _change_text(change: Any) -> str:
    if isinstance(change, dict):
        kind = change.get("kind") or change.get("pass") or change.get("type") or ""
        what = change.get("detail") or change.get("what") or change.get("message") or change.get("node") or ""
        return f"{kind}: {what}" if kind and what else str(kind or what or change)
    if hasattr(change, "to_dict"):
        return _change_text(change.to_dict())
    return str(change)


def render(res: ScoreResult) -> None:
    size = "x".join(map(str, res.input_size))
    table = Table(title=f"{res.model} ({res.source}) at {size}, batch {res.batch_size}, {res.device} {res.dtype}")
    table.add_column("proxy", style="bold")
    table.add_column("score ± 95% interval", justify="right")
    table.add_column("n", justify="right")
    table.add_column("time", justify="right")
    table.add_column("per repeat", justify="right")
    table.add_column("graph")
    for name, s in res.scores.items():
        table.add_row(name, _fmt_score(name, s.value, s.ci95), str(s.repeat), f"{s.seconds:.3f} s",
                      f"{s.seconds_per_repeat:.3f} s", s.graph)
    print_table(table)
    if "zen" in res.scores:
        out.print(f"bn-stat {res.bn_stat}, mixup-gamma {res.mixup_gamma:g}, seed {res.seed}")
    conv = res.conversion
    if conv:
        changes = list(conv.get("changes") or [])
        verdict = conv.get("verdict", "?")
        line = f"conversion: {verdict}"
        if "bn_count" in conv:
            line += f", {conv['bn_count']} BN layer(s) kept"
        counts = conv.get("counts") or {}
        by_kind = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        line += f", {len(changes)} change(s)" + (f" ({by_kind})" if by_kind else "")
        out.print(line, highlight=False)
        for reason in list(conv.get("approximations") or [])[:5]:
            out.print(f"  ~ {reason}", highlight=False, markup=False)
        shown = changes[:8]
        for c in shown:
            out.print(f"  - {_change_text(c)}", highlight=False, markup=False)
        if len(changes) > len(shown):
            out.print(f"  ... {len(changes) - len(shown)} more (--json lists them all)")
    t = res.timings
    parts = [f"{k} {t[k]:.3f} s" for k in ("load", "trace", "convert", "score") if k in t]
    out.print("time: " + ", ".join(parts))
    for note in res.notes:
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)


@handle_errors
def score_cmd(models: ModelsArg, proxy: ProxyOpt = "zen", kwarg: KwargOpt = None,
              resolution: ResolutionOpt = None, input_size: InputSizeOpt = None,
              batch_size: BatchOpt = DEFAULT_BATCH_SIZE, repeat: RepeatOpt = DEFAULT_REPEAT,
              seed: SeedOpt = 0, bn_stat: BnStatOpt = "official", mixup_gamma: GammaOpt = 1e-2,
              device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", graph: GraphOpt = None,
              num_classes: ClassesOpt = 1000, json: JsonOpt = False) -> None:
    """Score MODEL's vanilla-CNN form with the Zen-Score (default) or other zero-shot proxies.

    Zen-Score follows Algorithm 1 of Zen-NAS (ICCV 2021) and, with --bn-stat official (default),
    gives the number the authors' own code gives for the same vanilla network.
    """
    import zenfx

    kwargs = zenfx.parse_kwargs(kwarg)
    size = zenfx.parse_input_size(input_size, None, (3, 224, 224)) if input_size is not None else None
    from zenfx.proxies.aggregate import is_aggregate

    if len(models) > 1 or any(is_aggregate(p) for p in proxy.split(",") if p.strip()):
        _rank(models, proxy, kwargs, size, resolution, batch_size, repeat, seed, bn_stat, mixup_gamma, device,
              dtype, graph, num_classes, json)
        return
    model = models[0]
    with err.status(f"scoring {model} ...", spinner="dots") as status:
        def progress(name: str, r: int, n: int) -> None:
            status.update(f"scoring {model}: {name}, repeat {r + 1}/{n}")

        res = zenfx.score(model, proxy, kwargs=kwargs, input_size=size, resolution=resolution,
                          batch_size=batch_size, repeat=repeat, seed=seed, bn_stat=bn_stat.strip().lower(),
                          mixup_gamma=mixup_gamma, device=device, dtype=dtype, graph=graph,
                          num_classes=num_classes, progress=progress)
    if json:
        print_json(res.to_dict())
        return
    render(res)


def _rank(models: list[str], proxy: str, kwargs: dict[str, Any], size: Any, resolution: int | None,
          batch_size: int, repeat: int, seed: int, bn_stat: str, mixup_gamma: float, device: str, dtype: str,
          graph: str | None, num_classes: int, json: bool) -> None:
    from zenfx.ranking import rank_models

    from .score_rank import render_ranking

    with err.status(f"scoring {len(models)} model(s) ...", spinner="dots"):
        res = rank_models(models, proxy, kwargs=kwargs, input_size=size, resolution=resolution,
                          batch_size=batch_size, repeat=repeat, seed=seed, bn_stat=bn_stat.strip().lower(),
                          mixup_gamma=mixup_gamma, device=device, dtype=dtype, graph=graph, num_classes=num_classes)
    if json:
        print_json(res.to_dict())
        return
    render_ranking(res)


def register(app: typer.Typer) -> None:
    app.command("score")(score_cmd)
