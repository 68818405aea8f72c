"""``zenfx space MODEL``: what evolution may change in a model (channel groups, kernels, block runs)
and what it may not, with the reason for every frozen site."""

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
    err,
    handle_errors,
    input_size_option,
    out,
    print_json,
    print_table,
)

ProbeOpt = Annotated[bool, typer.Option(
    "--probe/--no-probe", help="Rebuild and re-trace the model for every free group (once per seed, cached).")]
CacheOpt = Annotated[bool, typer.Option(
    "--cache/--no-cache", help="Reuse/store the analysed space under the user cache dir ($ZENFX_CACHE_DIR).")]
MembersOpt = Annotated[bool, typer.Option("--members", help="List every member layer of each group.")]


def _range(lo: int, hi: int, step: int | None = None) -> str:
    return f"{lo}..{hi}" + (f" /{step}" if step and step > 1 else "")


def _status(free: bool, reason: str | None) -> str:
    return "[green]free[/]" if free else f"[red]frozen[/]: {reason}"


def render(sp: Any, members: bool = False) -> None:
    _group_table(sp, members)
    if sp.kernels:
        kernels = Table(title="kernel sites (odd square convs with 'same' padding)")
        for col in ("conv", "kernel", "choices", "status"):
            kernels.add_column(col, no_wrap=col == "conv")
        for k in sp.kernels:
            kernels.add_row(k.path, str(k.kernel), "/".join(map(str, k.choices)), _status(k.free, k.reason))
        print_table(kernels)
    if sp.blocks:
        blocks = Table(title="block runs (depth: copies of the last block added or removed at the end)")
        for col in ("run", "container", "blocks", "range", "status"):
            blocks.add_column(col, no_wrap=col == "run")
        for b in sp.blocks:
            blocks.add_row(b.path, b.container or "<root>", str(b.count), _range(b.min, b.max),
                           _status(b.free, b.reason))
        print_table(blocks)
    _summary(sp)


def _group_table(sp: Any, members: bool) -> None:
    size = "x".join(map(str, sp.input_size))
    groups = Table(title=f"{sp.model} at {size}: channel groups")
    for col, just in (("group", "left"), ("role", "left"), ("channels", "right"), ("range / step", "right"),
                      ("members", "right" if not members else "left"), ("status", "left")):
        groups.add_column(col, justify=just, no_wrap=col == "group")  # type: ignore[arg-type]
    for g in sp.groups:
        role = g.role + (f" (x{g.ratio:g})" if g.ratio else "")
        mem = "\n".join(g.members) if members else str(len(g.members))
        groups.add_row(g.id, role, str(g.channels), _range(g.min, g.max, g.step) if g.free else "", mem,
                       _status(g.free, g.reason))
    print_table(groups)


def _summary(sp: Any) -> None:
    """Counts, the size of the space, why sites are frozen, and what the probe did."""
    line = ", ".join(f"{name}: {c['free']} free, {c['frozen']} frozen" for name, c in sp.counts().items())
    out.print(f"{line}; size of the space 10^{sp.size_log10():.1f}")
    reasons = sp.frozen_reasons()
    if reasons:
        out.print("frozen because:")
        for why, n in list(reasons.items())[:12]:
            out.print(f"  {n:3d} x {why}", highlight=False, markup=False)
        if len(reasons) > 12:
            out.print(f"  ... and {len(reasons) - 12} more reasons (--json lists every site)")
    probe = sp.topology.probe
    if probe.get("ran"):
        out.print(f"probe: {probe.get('frozen', 0)} site(s) frozen by rebuilding and re-tracing "
                  f"({probe.get('seconds', 0):.1f} s, cached per seed)")
    elif probe:
        out.print(f"probe: not run ({probe.get('reason', 'disabled')})")


@handle_errors
def space_cmd(model: ModelArg, kwarg: KwargOpt = None, resolution: ResolutionOpt = None,
              input_size: InputSizeOpt = None, probe: ProbeOpt = True, cache: CacheOpt = True,
              members: MembersOpt = False, json: JsonOpt = False) -> None:
    """Channel groups (with roles), kernel sites and repeatable block runs of MODEL: free or frozen, and why.

    MODEL may also be a genome JSON written by `zenfx mutate`: the space of the mutated model.
    """
    import zenfx

    kwargs = zenfx.parse_kwargs(kwarg)
    size = input_size_option(input_size, resolution)
    if not json:
        err.print("[dim]analysing (the first run per seed probes every free group; later runs read the cache)...[/]")
    sp = zenfx.space(model, kwargs, size, probe=probe, cache=cache)
    if json:
        print_json(sp.to_dict())
        return
    render(sp, members)


def register(app: typer.Typer) -> None:
    app.command("space")(space_cmd)
