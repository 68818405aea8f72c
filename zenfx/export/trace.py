"""Trace a model down to torch layers for export: every other class is inlined into its forward.

This is a different cut from ``zenfx.tracing`` (which keeps whole timm/torchvision blocks when they
help the analysis): here the leaves are exactly the modules ``export_layers.layer_spec`` can write
as constructor code, so that the traced graph mentions nothing but torch. A timm norm-with-act
layer becomes a node for the torch norm followed by calls of its ``drop`` and ``act`` children.

The model is traced in train and in eval mode: a forward that branches on ``self.training``
(auxiliary heads, functional dropout, inlined batch-norm bookkeeping) gives two graphs, and the
exporter writes both under ``if self.training:``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import NotTraceableError
from ..tracing import PathTrackingTracer, default_arguments, describe_failure, drop_bound_placeholders
from .layers import LayerSpec, NotExportableError, layer_spec


class ExportTracer(PathTrackingTracer):
    """Leaves are writable torch layers; remembers the module path it is in for error messages."""

    def __init__(self, specs: dict[int, LayerSpec | None]) -> None:
        super().__init__()
        self.specs = specs  # id(module) -> spec (None: inline), shared between the two traces
        self.constants: dict[str, torch.Tensor] = {}

    def spec(self, m: nn.Module) -> LayerSpec | None:
        key = id(m)
        if key not in self.specs:
            self.specs[key] = layer_spec(m)
        return self.specs[key]

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return self.spec(m) is not None

    def module_call(self, m: nn.Module, path: str, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        spec = self.spec(m)
        if spec is not None and spec.kind == "norm_act":  # the torch norm, then its drop and act children
            y = self.create_proxy("call_module", path, args, kwargs)
            for child in spec.children:
                sub = getattr(m, child)
                y = self.call_module(sub, sub.forward, (y,), {})
            return y
        return super().module_call(m, path, forward, args, kwargs)


@dataclass
class Traced:
    """One mode's graph plus the root it refers to."""

    graph: fx.Graph
    training: bool
    constants: dict[str, torch.Tensor] = field(default_factory=dict)  # fx-created tensor constants


class _CustomAutograd(Exception):
    def __init__(self, fn: type) -> None:
        super().__init__(fn.__qualname__)
        self.fn = fn


@contextlib.contextmanager
def _refuse_custom_autograd() -> Iterator[None]:
    """fx runs a custom ``autograd.Function``'s forward on proxies and records the ops, which
    silently drops its hand-written backward: an export would compute different gradients."""
    Function = torch.autograd.function.Function
    original = Function.__dict__["apply"]

    def apply(cls: type, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, fx.Proxy) for a in [*args, *kwargs.values()]):
            raise _CustomAutograd(cls)
        return original.__func__(cls, *args, **kwargs)

    Function.apply = classmethod(apply)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        Function.apply = original  # type: ignore[method-assign]


def _trace_mode(model: nn.Module, training: bool, specs: dict[int, LayerSpec | None]) -> Traced:
    model.train(training)
    tracer = ExportTracer(specs)
    bound = default_arguments(model)
    before = set(vars(model))
    try:
        with _refuse_custom_autograd():
            graph = tracer.trace(model, concrete_args=bound or None)
    except _CustomAutograd as exc:
        path = f" in module '{tracer.failed_at[0] or '<root>'}'" if tracer.failed_at else ""
        raise NotExportableError(
            f"cannot export {type(model).__name__}: custom autograd function "
            f"{exc.fn.__module__}.{exc.fn.__qualname__}{path}: its backward cannot be written as torch code"
        ) from None
    except Exception as exc:
        raise NotTraceableError(
            f"cannot export {type(model).__name__}: torch.fx could not trace it down to torch layers"
            f" ({'train' if training else 'eval'} mode): {describe_failure(exc, tracer)}",
            hint="every module that is not a plain torch layer must have a forward torch.fx can trace",
        ) from None
    finally:
        for name in sorted(set(vars(model)) - before):  # fx parks tensor constants on the root: take them back
            if name.startswith("_tensor_constant"):
                tracer.constants[name] = getattr(model, name)
                delattr(model, name)
    if bound:
        _drop_bound_placeholders_graph(graph)
    _drop_identities(graph, model, specs)
    return Traced(graph, training, dict(tracer.constants))


def _drop_bound_placeholders_graph(graph: fx.Graph) -> None:
    """The same clean-up ``zenfx.tracing`` does on a GraphModule, on a bare graph."""

    class _Holder:
        def __init__(self, g: fx.Graph) -> None:
            self.graph = g

        def recompile(self) -> None:
            pass

    drop_bound_placeholders(_Holder(graph))  # type: ignore[arg-type]


def _drop_identities(graph: fx.Graph, root: nn.Module, specs: dict[int, LayerSpec | None]) -> None:
    """``nn.Identity`` calls and unused pure nodes only add noise to the written forward."""
    for node in list(graph.nodes):
        if node.op == "call_module":
            m = root.get_submodule(str(node.target))
            if type(m) is nn.Identity and node.args:
                node.replace_all_uses_with(node.args[0])
                graph.erase_node(node)
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph.nodes)):
            if node.users or node.op in ("placeholder", "output", "call_module"):
                continue
            pure = node.op == "get_attr" or (
                node.op == "call_function" and node.target in (getattr, _getitem())) or (
                node.op == "call_method" and node.target in ("size", "dim", "numel"))
            if pure:
                graph.erase_node(node)
                changed = True


def _getitem() -> Any:
    import operator

    return operator.getitem


def trace_for_export(model: nn.Module) -> tuple[Traced, Traced, dict[int, LayerSpec | None]]:
    """Train-mode and eval-mode graphs of ``model``; its mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    # Decided before tracing: while fx traces, attribute reads on modules return proxies.
    specs: dict[int, LayerSpec | None] = {id(m): layer_spec(m) for m in model.modules()}
    try:
        with torch.no_grad():
            train = _trace_mode(model, True, specs)
            evalg = _trace_mode(model, False, specs)
    finally:
        for m, mode in modes:  # per module: a model may keep some parts in eval on purpose
            m.training = mode
    return train, evalg, specs
