"""load -> trace in one call, so no command re-resolves or re-traces what another step produced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch.fx as fx
from torch import nn

from .graph import summarize
from .loading import InputSize, LoadedModel, resolve_model
from .tracing import trace


@dataclass
class TracedModel:
    """A resolved model, its shape-annotated graph and the input size it was traced at."""

    loaded: LoadedModel
    gm: fx.GraphModule
    input_size: InputSize

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def tracer(self) -> str:
        return str(self.gm.meta.get("zenfx_tracer", "unknown"))


def load_and_trace(spec: str | nn.Module, kwargs: dict[str, Any] | None = None,
                   input_size: Sequence[int] | None = None, device: str | None = None,
                   batch_size: int = 1) -> TracedModel:
    """Resolve ``spec`` (optionally on the meta device), trace it and annotate shapes.

    ``input_size=None`` means the model's own default (timm's config, torchvision's crop size,
    else 3x224x224).
    """
    loaded = resolve_model(spec, kwargs, device=device)
    size: InputSize = tuple(int(s) for s in (input_size or loaded.default_input_size))  # type: ignore[assignment]
    gm = trace(loaded.module, size, batch_size=batch_size)
    return TracedModel(loaded, gm, size)


def inspect_model(spec: str | nn.Module, kwargs: dict[str, Any] | None = None,
                  input_size: Sequence[int] | None = None) -> dict[str, Any]:
    """Structure of a model's graph: what ``zenfx inspect`` prints. Built on meta: costs no memory."""
    tm = load_and_trace(spec, kwargs, input_size, device="meta" if isinstance(spec, str) else None)
    info = summarize(tm.gm)
    info["params"] = sum(p.numel() for p in tm.loaded.module.parameters())
    return {"model": tm.name, "source": tm.loaded.source, **info}
