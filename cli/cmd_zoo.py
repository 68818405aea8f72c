"""``zenfx zoo [PATTERN]``: what ``zoo:NAME`` can name, with stored figures (nothing is scored live)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import JsonOpt, handle_errors, out, print_json, print_table

PatternArg = Annotated[str | None, typer.Argument(help="Shell pattern (zennet_*) or a word the name contains.")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="Only this kind: family, seed, released or found.")]


def _human(n: float | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def _found_figures(found: dict | None) -> dict:
    """A found net's figures come from its own search record: the score the search gave it."""
    if not found:
        return {}
    figs = found.get("figures") or {}
    out = {"params": figs.get("params"), "macs": figs.get("macs"), "zen_command": found.get("command"),
           "zen_date": found.get("date")}
    if found.get("proxy") == "zen":
        out["zen"] = found.get("score")
    return out


@handle_errors
def zoo_cmd(pattern: PatternArg = None, kind: KindOpt = None, json: JsonOpt = False) -> None:
    """List the zoo: families, search seeds, released networks (Zen-NAS's ZenNets) and networks
    zenfx's own search found, each usable as zoo:NAME in every command. Params and MACs are at the
    entry's default input size; Zen is the official Zen-Score measured once with the command shown
    (refresh: ./dev python -m zenfx.zoo.figures)."""
    from rich.table import Table

    from zenfx.errors import UsageError
    from zenfx.zoo import figures as zoo_figures
    from zenfx.zoo.registry import list_entries

    entries = list_entries(pattern, kind)
    if not entries:
        raise UsageError(f"no zoo entry matches {pattern!r}" + (f" of kind {kind}" if kind else ""),
                         hint="`zenfx zoo` lists them all")
    stored = zoo_figures.load()
    rows = [{**e.to_dict(), "figures": stored.get(e.name) or _found_figures(e.meta.get("found"))} for e in entries]
    if json:
        print_json({"entries": rows})
        return
    table = Table(title=f"zenfx zoo ({len(rows)} entr{'y' if len(rows) == 1 else 'ies'})")
    wide = out.width >= 120  # a narrow terminal keeps the figures readable; --json has the descriptions
    columns = [("spec", "left"), ("kind", "left"), ("input", "right"), ("params", "right"), ("MACs", "right"),
               ("Zen", "right")] + ([("description", "left")] if wide else [])
    for col, justify in columns:
        table.add_column(col, justify=justify, overflow="fold",  # type: ignore[arg-type]
                         ratio=1 if col == "description" else None)  # zenfx's print_table keeps figures whole
    dates = set()
    for row in rows:
        fig = row["figures"]
        zen = fig.get("zen")
        if fig.get("zen_date"):
            dates.add(fig["zen_date"][:10])
        cells = [row["spec"], row["kind"], "x".join(map(str, row["input_size"][1:])), _human(fig.get("params")),
                 _human(fig.get("macs")), f"{zen:.2f}" if isinstance(zen, (int, float)) else "-"]
        table.add_row(*cells, *([row["description"]] if wide else []))
    print_table(table)
    note = ("Zen: official Zen-Score, `./dev zenfx score zoo:NAME` (batch 16, 4 repeats, seed 0; CPU, or a GPU "
            "for the 224-px nets)")
    out.print(note + (f", measured {', '.join(sorted(dates))}" if dates else "") + "; --json gives each command.")


def register(app: typer.Typer) -> None:
    app.command("zoo")(zoo_cmd)
