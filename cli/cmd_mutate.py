"""``zenfx mutate MODEL``: draw random valid edits, write the genome, compare seed and mutant."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from .common import (
    InputSizeOpt,
    JsonOpt,
    KwargOpt,
    ModelArg,
    ResolutionOpt,
    at_least,
    err,
    handle_errors,
    input_size_option,
    out,
    print_json,
    print_table,
)

EditsOpt = Annotated[int, typer.Option("--edits", "-n", help="Number of random edits to append.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the edit draw: same seed, same genome.")]
KindsOpt = Annotated[str, typer.Option("--kinds", help="Edit kinds to draw from, comma-separated: width,kernel,depth.")]
ChoicesOpt = Annotated[list[str] | None, typer.Option(
    "--width-choices", help="Channel grid, [ROLE=]LIST, e.g. 8,16,...,64 (every role) or stage=16,32,48; repeatable.")]
InitSeedOpt = Annotated[int, typer.Option("--init-seed", help="Torch seed of the built model's weights.")]
OutOpt = Annotated[str | None, typer.Option(
    "--out", "-o", help="Write the genome JSON here (a model spec for every command).")]
ScoreOpt = Annotated[bool, typer.Option("--score/--no-score", help="Zen-Score seed and mutant (the slow column).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Zen-Score batch size.")]
RepeatOpt = Annotated[int, typer.Option("--repeat", help="Zen-Score repeats.")]

ROLES = ("stage", "stem", "inner", "expansion", "squeeze", "head")


def parse_grid(text: str) -> list[int]:
    """'8,16,...,64' -> 8,16,24,...,64; plain lists as they are."""
    from zenfx.errors import UsageError

    parts = [p.strip() for p in text.split(",") if p.strip()]
    values: list[int] = []
    try:
        for i, p in enumerate(parts):
            if p == "...":
                if len(values) < 2 or i + 1 >= len(parts):
                    raise ValueError
                step, stop = values[-1] - values[-2], int(parts[i + 1])
                if step <= 0:
                    raise ValueError
                values.extend(range(values[-1] + step, stop, step))
            else:
                values.append(int(p))
    except ValueError:
        raise UsageError(f"--width-choices '{text}' must be integers, optionally with '...' (8,16,...,64)") from None
    if not values or min(values) < 1:
        raise UsageError(f"--width-choices '{text}' must be positive integers")
    return sorted(set(values))


def parse_choices(items: list[str] | None) -> dict[str, list[int]] | None:
    if not items:
        return None
    out: dict[str, list[int]] = {}
    for item in items:
        key, _, grid = item.rpartition("=") if "=" in item else ("", "", item)
        for k in ([key] if key else ROLES):
            out[k] = parse_grid(grid)
    return out


def check_choice_keys(grid: dict[str, list[int]], base: Any) -> None:
    """A ``ROLE=`` or ``GROUP=`` key that names nothing in the space is refused, not ignored."""
    from zenfx.errors import UsageError
    from zenfx.genome import current_state

    unknown = [k for k in grid if k not in ROLES]
    if not unknown:
        return
    ids = {g.id for g in current_state(base).groups}
    bad = [k for k in unknown if k not in ids]
    if bad:
        raise UsageError(f"--width-choices names {', '.join(repr(k) for k in bad)}: neither a role "
                         f"({', '.join(ROLES)}) nor a channel group of {base.seed}",
                         hint=f"'zenfx space {base.seed}' lists the groups")


def _facts(model: Any, size: tuple[int, int, int], score: bool, batch: int, repeat: int) -> dict[str, Any]:
    import zenfx

    row: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    row["macs"] = zenfx.count_macs(model, size)
    try:
        vc = zenfx.convert_model(model, input_size=size, strict=False)
        row["vcnn_depth"] = vc.conv_count if vc.convertible else None
        if not vc.convertible:
            row["vcnn_error"] = "not VCNN-convertible: " + ("; ".join(vc.reasons) or "no reason given")
    except zenfx.ZenfxError as exc:
        row["vcnn_depth"], row["vcnn_error"] = None, str(exc)
    if score:
        try:
            res = zenfx.score(model, "zen", input_size=size, batch_size=batch, repeat=repeat)
            row["zen"], row["zen_ci95"] = res.value, res.ci95
        except zenfx.NotConvertibleError as exc:
            row["zen"], row["zen_error"] = None, row.get("vcnn_error") or str(exc)
        except zenfx.ZenfxError as exc:
            row["zen"], row["zen_error"] = None, str(exc)
    return row


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in ("params", "macs"):
        from zenfx.search.budget import fmt_figure

        return fmt_figure(key, v)  # the units search and space print (272k, 40.9M)
    if key == "zen":
        return f"{v:.2f}"
    return str(v)


def _dash_notes(result: dict[str, Any]) -> list[str]:
    """Why a '-' stands in the VCNN depth or Zen-Score column: one line per distinct reason."""
    cols: dict[str, list[str]] = {}
    rows: dict[str, list[str]] = {}
    for name in ("seed", "mutant"):
        row = result[name]
        for col, key, why in (("VCNN depth", "vcnn_depth", "vcnn_error"), ("Zen-Score", "zen", "zen_error")):
            if row.get(key) is None and row.get(why):
                if col not in cols.setdefault(row[why], []):
                    cols[row[why]].append(col)
                if name not in rows.setdefault(row[why], []):
                    rows[row[why]].append(name)
    return [f"{' and '.join(cols[why])} '-' for the {' and the '.join(rows[why])}: {why}" for why in cols]


def render(result: dict[str, Any]) -> None:
    edits = Table(title=f"{len(result['new_edits'])} edit(s) drawn with seed {result['draw_seed']}")
    for col in ("#", "kind", "target", "value"):
        edits.add_column(col)
    start = len(result["genome"]["edits"]) - len(result["new_edits"])
    for i, e in enumerate(result["new_edits"], start=start + 1):
        edits.add_row(str(i), e["kind"], e["target"], str(e["value"]))
    print_table(edits)
    cmp = Table(title=f"{result['model']} at {'x'.join(map(str, result['input_size']))}: seed vs mutant")
    for col in ("", "params", "MACs", "VCNN depth", "Zen-Score"):
        cmp.add_column(col, justify="right" if col else "left")
    for name in ("seed", "mutant"):
        row = result[name]
        cmp.add_row(name, _fmt("params", row["params"]), _fmt("macs", row["macs"]),
                    _fmt("vcnn_depth", row["vcnn_depth"]), _fmt("zen", row.get("zen")))
    print_table(cmp)
    for note in _dash_notes(result):
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)
    if result.get("out"):
        out.print(f"genome written to {result['out']} (use it as a model spec: zenfx score {result['out']})")


def _memory_bytes() -> int | None:
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_buildable(child: Any, n: int) -> None:
    """Refuse a mutant whose weights cannot be built here, before building it: each width edit
    scales a group by up to 2.5x, so thousands of random edits walk the widths far past any machine
    (cifar_resnet_basic after 1,000 edits: 9.5e9 parameters). Counted on the meta device (no memory)."""
    import zenfx

    try:
        meta = zenfx.build(child, device="meta")
        params = sum(p.numel() for p in meta.parameters())
    except RuntimeError as exc:  # torch's own size arithmetic overflowed
        params, why = None, str(exc).splitlines()[0]
    else:
        why = ""
    ram = _memory_bytes()
    limit = None if ram is None else ram // 2
    if params is not None and (limit is None or params * 4 <= limit):
        return
    size = "more parameters than torch can index" if params is None or ram is None else \
        (f"{params:.3g} parameters ({params * 4 / 2**30:,.1f} GiB of float32 weights, more than half of this "
         f"machine's {ram / 2**30:.0f} GiB)")
    raise zenfx.UsageError(f"after {n} random edits the mutant has {size}: too large to build and score"
                           + (f" ({why})" if why else ""),
                           hint="draw fewer edits: each width edit scales a channel group by up to 2.5x")


def _base_genome(model: str, kw: dict[str, Any], size: tuple[int, int, int] | None, init_seed: int) -> Any:
    """The genome the edits are appended to: a genome file as it is, or a spec at its input size."""
    import zenfx
    from zenfx.genome import Genome, is_genome_spec

    if is_genome_spec(model):
        if kw:
            raise zenfx.UsageError("constructor arguments were given with a genome: the genome carries its own")
        base = Genome.load(model)
        if size and tuple(size) != base.input_size:
            raise zenfx.UsageError(f"the genome is for input size {base.input_size}; drop --input-size/--resolution")
        return base
    if size is None:
        size = tuple(zenfx.resolve_model(model, kw, device="meta").default_input_size)
    return Genome(model, kw, tuple(size), init_seed)  # type: ignore[arg-type]


@handle_errors
def mutate_cmd(model: ModelArg, kwarg: KwargOpt = None, resolution: ResolutionOpt = None,
               input_size: InputSizeOpt = None, edits: EditsOpt = 1, seed: SeedOpt = 0,
               kinds: KindsOpt = "width,kernel,depth", width_choices: ChoicesOpt = None,
               init_seed: InitSeedOpt = 0, out_path: OutOpt = None, score: ScoreOpt = True,
               batch_size: BatchOpt = 16, repeat: RepeatOpt = 1, json: JsonOpt = False) -> None:
    """Append N random edits (width/kernel/depth, valid by construction) to MODEL or a genome JSON.

    Prints the edits and a seed-versus-mutant table (params, MACs, VCNN depth, Zen-Score); --out writes
    the genome, which every command accepts as a model spec.
    """
    import random

    import zenfx

    at_least("--edits", edits, 1)
    at_least("--batch-size", batch_size, 1)
    at_least("--repeat", repeat, 1)
    base = _base_genome(model, zenfx.parse_kwargs(kwarg), input_size_option(input_size, resolution), init_seed)
    grid = parse_choices(width_choices)
    if not json:
        err.print("[dim]reading the space (probed once per seed, then cached) and drawing edits...[/]")
    if grid:
        check_choice_keys(grid, base)
    child = zenfx.mutate(base, random.Random(seed), edits, kinds=kinds, width_choices=grid)
    new = child.edits[len(base.edits):]
    if out_path:
        child.save(out_path)
    if not json:
        err.print("[dim]building seed and mutant, counting, converting" + (", scoring" if score else "") + "...[/]")
    _check_buildable(child, len(new))
    seed_model, mutant = zenfx.build(base), zenfx.build(child)
    doc = {
        "model": base.seed, "input_size": list(base.input_size), "draw_seed": seed, "out": out_path,
        "new_edits": [e.to_dict() for e in new], "genome": child.to_dict(),
        "structure_key": zenfx.structure_key(mutant),
        "seed": _facts(seed_model, base.input_size, score, batch_size, repeat),
        "mutant": _facts(mutant, base.input_size, score, batch_size, repeat),
    }
    if json:
        print_json(doc)
        return
    render(doc)


def register(app: typer.Typer) -> None:
    app.command("mutate")(mutate_cmd)
