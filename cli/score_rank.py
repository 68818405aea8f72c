"""``zenfx score A B C --proxy az``: the table of a pool of models ranked by aggregated objectives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from .common import out

if TYPE_CHECKING:
    from zenfx.ranking import RankResult


def _num(v: float) -> str:
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.4e}"
    return f"{v:.4f}"


def render_ranking(res: RankResult) -> None:
    first = res.results[0]
    size = "x".join(map(str, first.input_size))
    main = res.main
    table = Table(title=f"{len(res.models)} models ranked by {main} at {size}, batch {first.batch_size}, "
                        f"{first.repeat} repeat(s), seed {first.seed}")
    table.add_column("rank", justify="right")
    table.add_column("model", style="bold")
    for o in res.objectives:
        table.add_column(o.name + (" (agg.)" if o.aggregated else ""), justify="right")
    members = [m for m in dict.fromkeys(m for o in res.objectives if o.aggregated for m in o.members)]
    for m in members:
        table.add_column(m, justify="right", style="dim")
    for place, i in enumerate(res.order[main], start=1):
        r = res.results[i]
        row = [str(place), res.models[i]]
        row += [_num(res.values[o.name][i]) for o in res.objectives]
        row += [_num(r.scores[m].value) for m in members]
        table.add_row(*row)
    out.print(table)
    if any(o.aggregated for o in res.objectives):
        out.print("aggregate: sum over members of log(rank / N) within these models (0 = best on every member)",
                  highlight=False)
    for o in res.objectives[1:]:
        out.print(f"by {o.name}: " + " > ".join(res.ranking(o.name)), highlight=False, markup=False)
    for note in res.notes:
        out.print(f"note: {note}", style="dim", highlight=False, markup=False)
