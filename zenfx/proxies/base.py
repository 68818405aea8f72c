"""The proxy registry: one place that knows every zero-shot proxy, the graph it runs on and its needs.

A proxy is a function ``fn(net, ctx) -> float``. ``net`` is a private copy of the graph the proxy
runs on (the original model or its VCNN form, per ``ProxySpec.graph`` unless the caller overrides),
so a proxy may re-initialise or mutate it freely. ``ctx`` carries everything else (shapes, seed,
device, dtype, data). Scoring (repeats, intervals, NaN checks, timing) lives in ``zenfx.scoring``,
not in the proxies, so every proxy gets it for free.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..errors import UsageError

GraphKind = Literal["original", "vcnn"]


@dataclass
class ProxyContext:
    """What a proxy may read besides the network itself."""

    input_size: tuple[int, int, int]
    batch_size: int = 16
    seed: int = 0
    repeat_index: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    num_classes: int = 1000
    # Zen-specific knobs; other proxies ignore them.
    bn_stat: str = "official"
    mixup_gamma: float = 1e-2
    # Data provider: yields (inputs, labels) batches; None means Gaussian inputs + random labels.
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Scratch space a proxy may keep across the repeats of one score call (preallocated input
    # buffers, ...). Scoring creates one context per proxy per call, so nothing leaks between calls.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    # Shared by every proxy scored on one model (one Prepared, one benchmark architecture): proxies
    # computed by one pass (AZ-NAS's three) keep their common result here under their own key.
    shared: dict[Any, Any] = field(default_factory=dict, repr=False)

    def generator(self, offset: int = 0, device: torch.device | str | None = None) -> torch.Generator:
        """A generator seeded from (seed, repeat, offset): same seed, same numbers.

        CPU by default; ``device=ctx.device`` gives one on the accelerator so that random weights
        and inputs are drawn where they are used (no host-to-device copy).
        """
        dev = torch.device(device) if device is not None else torch.device("cpu")
        g = torch.Generator(device=dev)
        g.manual_seed(self.derived_seed(offset))
        return g

    def derived_seed(self, offset: int = 0) -> int:
        """The integer seed ``generator(offset)`` uses (for code that needs a plain seed)."""
        return (self.seed * 1_000_003 + self.repeat_index * 9_176 + offset) % (2**63 - 1)


ProxyFn = Callable[[nn.Module, ProxyContext], float]


@dataclass(frozen=True)
class ProxySpec:
    name: str
    fn: ProxyFn
    graph: GraphKind  # the graph the reference implementation scores
    needs_data: bool  # True when the value depends on input data/labels
    needs_head: bool  # True when it needs logits (a loss), so a VCNN graph gets GAP+Linear appended
    reference: str  # paper / code the definition follows
    summary: str
    higher_is_better: bool = True
    deterministic_without_seed: bool = False  # params, flops: no randomness, one repeat is enough
    # The proxy overwrites every conv/linear/norm parameter and resets BN running stats itself
    # (zen, phi). Scoring may then build the model on the meta device and reuse one materialised
    # copy across repeats instead of deep-copying the constructor's weights each time.
    reinitializes: bool = False
    # False: the proxy only reads the network (params, flops); scoring skips the private copy.
    mutates: bool = True
    # -inf is a rank (the lowest), not a failure (AZ-NAS maps NaN and identity blocks to -inf).
    inf_is_rank: bool = False
    # Proxies computed by one common pass (AZ-NAS's three) name the pass: scoring gives them one
    # re-initialised copy of the model between them instead of one each.
    shared_pass: str | None = None


REGISTRY: dict[str, ProxySpec] = {}


def register_proxy(name: str, *, graph: GraphKind, needs_data: bool, needs_head: bool = False,
                   reference: str, summary: str, higher_is_better: bool = True,
                   deterministic: bool = False, reinitializes: bool = False,
                   mutates: bool = True, inf_is_rank: bool = False,
                   shared_pass: str | None = None) -> Callable[[ProxyFn], ProxyFn]:
    def deco(fn: ProxyFn) -> ProxyFn:
        if name in REGISTRY:
            raise RuntimeError(f"proxy '{name}' registered twice")
        REGISTRY[name] = ProxySpec(name, fn, graph, needs_data, needs_head, reference, summary,
                                   higher_is_better, deterministic, reinitializes, mutates, inf_is_rank,
                                   shared_pass)
        return fn

    return deco


def get_proxy(name: str) -> ProxySpec:
    _load_builtin()
    key = name.strip().lower()
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, list(REGISTRY), n=3)
        raise UsageError(f"unknown proxy '{name}' (known: {', '.join(sorted(REGISTRY))})",
                         hint=f"did you mean {', '.join(close)}?" if close else None)
    return REGISTRY[key]


def list_proxies() -> list[ProxySpec]:
    _load_builtin()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def _load_builtin() -> None:
    """Import every module in zenfx.proxies so their @register_proxy decorators run."""
    import importlib
    import pkgutil

    from . import __path__ as pkg_path

    for mod in pkgutil.iter_modules(pkg_path):
        if mod.name not in ("base",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__package__}.{mod.name}")
