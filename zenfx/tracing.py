"""Trace any ``nn.Module`` into a torch.fx GraphModule with a shape on every node.

Two tracers, tried in order: plain ``torch.fx.symbolic_trace``, then a leaf-module-aware tracer fed
by timm's not-trace registries (the approach timm's own fx tests and torchvision's feature
extraction use), which keeps modules with data-dependent Python control flow as opaque leaves.
When both fail the error names the module path and the user source line where tracing broke,
because "symbolic trace failed" alone leaves a user nothing to act on.

Shapes are propagated on meta tensors (or fake tensors for real-weight models): no real compute.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .devices import module_device
from .errors import NotTraceableError, ShapeError, UsageError

TRACER_SYMBOLIC = "symbolic_trace"
TRACER_LEAF = "leaf_aware"

_TORCH_DIR = os.path.dirname(torch.__file__)
_OUR_DIR = os.path.dirname(os.path.abspath(__file__))


def timm_registries() -> tuple[set[type], set[Callable[..., Any]]]:
    """timm's own lists of modules/functions that must stay opaque to fx (empty before timm is
    imported: no model can hold them then, see ``graph.loaded``)."""
    leaf: set[type] = set()
    funcs: set[Callable[..., Any]] = set()
    if "timm" not in sys.modules:
        return leaf, funcs
    try:
        from timm.layers import _fx as timm_fx  # timm >= 0.9

        leaf |= set(timm_fx.get_notrace_modules())
        funcs |= set(timm_fx.get_notrace_functions())
    except Exception:  # pragma: no cover - timm layout changed
        pass
    return leaf, funcs


class PathTrackingTracer(fx.Tracer):
    """A tracer that remembers which submodule it is inside, for error messages."""

    def __init__(self, leaf_types: Sequence[type] = (), autowrap_functions: Sequence[Callable[..., Any]] = ()) -> None:
        super().__init__(autowrap_functions=tuple(autowrap_functions))
        self.leaf_types = tuple(leaf_types)
        self.path_stack: list[tuple[str, str]] = []
        self.failed_at: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self.leaf_types and isinstance(m, self.leaf_types):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        path = self.path_of_module(m)
        self.path_stack.append((path, type(m).__name__))
        try:
            return self.module_call(m, path, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = self.path_stack[-1]
            raise
        finally:
            self.path_stack.pop()


    def module_call(self, m: nn.Module, path: str, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        """What calling ``m`` records, inside the path bookkeeping (a subclass may record otherwise)."""
        return super().call_module(m, forward, args, kwargs)


def user_frame(exc: BaseException) -> str | None:
    """The innermost traceback frame outside torch and zenfx: the user's line that broke."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        fn = os.path.abspath(frame.filename)
        if fn.startswith(_TORCH_DIR) or fn.startswith(_OUR_DIR) or "<" in frame.filename:
            continue
        line = (frame.line or "").strip()
        return f"{frame.filename}:{frame.lineno} `{line}`"
    return None


_CONSTANT_DEFAULTS = (type(None), bool, int, float, str)


def default_arguments(model: nn.Module) -> dict[str, Any]:
    """Forward parameters after the input that have constant defaults, bound to those defaults.

    Traced as proxies they would take both sides of ``if mask is not None`` (timm's Hiera), giving
    a graph that no call ``model(x)`` ever runs; bound, the graph is the one ``model(x)`` runs.
    """
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    bound: dict[str, Any] = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty:
            continue
        if isinstance(p.default, _CONSTANT_DEFAULTS):
            bound[p.name] = p.default
    return bound


def drop_bound_placeholders(gm: fx.GraphModule) -> None:
    """Remove fx's guards on bound arguments (``_assert_is_none``, ``torch._assert(arg == v)``)
    and the placeholders they leave unused: fx bakes the bound values in as constants, so the
    graph then takes the input alone."""
    graph = gm.graph
    bound = [n for n in graph.nodes if n.op == "placeholder"][1:]
    derived: set[fx.Node] = set(bound)
    for n in graph.nodes:
        if n.op == "call_function" and n.all_input_nodes and set(n.all_input_nodes) <= derived:
            derived.add(n)
    for n in reversed(list(graph.nodes)):
        if n in derived and not n.users:
            graph.erase_node(n)
    gm.recompile()


def run_tracer(model: nn.Module, tracer: PathTrackingTracer, name: str) -> fx.GraphModule:
    bound = default_arguments(model)
    graph = tracer.trace(model, concrete_args=bound or None)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    if bound:
        drop_bound_placeholders(gm)
    gm.meta["zenfx_tracer"] = name
    return gm


def describe_failure(exc: BaseException, tracer: PathTrackingTracer) -> str:
    """``Type: message in module 'path' (Class) at file.py:LINE``: why a trace failed, and where."""
    where = ""
    if tracer.failed_at is not None:
        path, cls = tracer.failed_at
        where = f" in module '{path or '<root>'}' ({cls})"
    line = user_frame(exc)
    at = f" at {line}" if line else ""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}{where}{at}"


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """Trace with the plain tracer first, the leaf-aware one second; record which one worked."""
    if isinstance(model, fx.GraphModule) and "zenfx_tracer" in model.meta:
        return model
    plain = PathTrackingTracer()
    try:
        return run_tracer(model, plain, TRACER_SYMBOLIC)
    except Exception as first:
        first_exc = first
    leaf_types, funcs = timm_registries()
    leaf = PathTrackingTracer(leaf_types=tuple(leaf_types), autowrap_functions=tuple(funcs))
    try:
        return run_tracer(model, leaf, TRACER_LEAF)
    except Exception as second:
        leaf_why, plain_why = describe_failure(second, leaf), describe_failure(first_exc, plain)
        raise NotTraceableError(
            f"cannot trace {type(model).__name__}: {leaf_why}",
            hint=None if plain_why == leaf_why else f"plain symbolic_trace failed differently: {plain_why}",
        ) from None


class ShapeInterpreter(fx.Interpreter):
    """Runs the graph on meta/fake tensors and writes shape and dtype into ``node.meta``; a node
    that cannot run raises what ``failure`` makes of its error (a subclass may say it differently)."""

    def failure(self, n: fx.Node, exc: Exception) -> Exception:
        return _run_error(self.module, n, self.env, exc)

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as exc:
            raise self.failure(n, exc) from None
        record_shape(n, result)
        return result


def record_shape(n: fx.Node, result: Any) -> None:
    """Write the shape record ``zenfx.graph`` documents (and reads through ``shape`` / ``tensor_shapes``)."""
    if isinstance(result, torch.Tensor):
        n.meta["shape"] = tuple(result.shape)
        n.meta["dtype"] = result.dtype
    elif isinstance(result, (tuple, list)) and result and all(isinstance(r, torch.Tensor) for r in result):
        n.meta["shape"] = tuple(tuple(r.shape) for r in result)
        n.meta["dtype"] = result[0].dtype
    else:
        n.meta["shape"] = None


def data_dependent(exc: BaseException) -> bool:
    """A failure because the op needs real values (``.item()``, ``.tolist()``, ``nonzero``), not a shape."""
    text = str(exc)
    return ("DataDependent" in type(exc).__name__ or "cannot be called on meta tensors" in text
            or "data-dependent" in text.lower() or "data dependent" in text.lower())


def _run_error(gm: fx.GraphModule, n: fx.Node, env: dict[fx.Node, Any], exc: Exception) -> Exception:
    """What to tell the user when a node fails on meta/fake tensors: a data-dependent op (exit 3,
    the graph's shapes depend on values) or the layer and input shape that cannot run (exit 2)."""
    if data_dependent(exc):
        op = f"Tensor.{n.target}()" if n.op == "call_method" else str(n.target)
        return NotTraceableError(
            f"cannot trace {type(gm).__name__}: forward calls {op} (node '{n.name}'), which needs real "
            "tensor values; zenfx needs a forward whose control flow and shapes do not depend on the data")
    return shape_error(gm, n, env, exc)


def shape_error(gm: fx.GraphModule, n: fx.Node, env: dict[fx.Node, Any], exc: Exception) -> ShapeError:
    what = str(n.target)
    if n.op == "call_module":
        what = f"'{n.target}' ({type(gm.get_submodule(str(n.target))).__name__})"
    shapes = [tuple(env[a].shape) for a in n.all_input_nodes if isinstance(env.get(a), torch.Tensor)]
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ShapeError(f"layer {what} cannot run on input of shape {', '.join(map(str, shapes)) or '?'}: {msg}")


def _check_single_input(gm: fx.GraphModule) -> None:
    """zenfx feeds a model one image tensor; a forward that needs more says so up front instead of
    failing at its second input with a shape error."""
    required = [n.target for n in gm.graph.nodes if n.op == "placeholder" and not n.args]
    if len(required) > 1:
        names = ", ".join(str(t).lstrip("*") for t in required)
        raise UsageError(
            f"{type(gm).__name__}.forward takes {len(required)} inputs ({names}), zenfx feeds one image tensor: "
            "wrap the model in a module whose forward(x) makes the others (README, 'Several inputs or outputs')")


def propagate_shapes(gm: fx.GraphModule, input_size: Sequence[int], batch_size: int = 1) -> fx.GraphModule:
    """Annotate every node with ``meta['shape']`` without real compute.

    Meta-device models take meta inputs directly; real-weight models run under FakeTensorMode so
    even a 600x600 EfficientNet-B7 costs no memory.
    """
    size = (batch_size, *tuple(int(s) for s in input_size))
    _check_single_input(gm)
    device = module_device(gm)
    if device.type == "meta":
        ShapeRunner = ShapeInterpreter(gm)
        ShapeRunner.run(torch.empty(size, device="meta"))
    else:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode(allow_non_fake_inputs=True)
        with mode:
            x = torch.empty(size, device=device)
            ShapeInterpreter(gm).run(x)
    gm.meta["zenfx_input_size"] = tuple(int(s) for s in input_size)
    return gm


def trace(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1) -> fx.GraphModule:
    """Trace ``model`` and annotate shapes; ``gm.meta['zenfx_tracer']`` says which tracer worked."""
    was_training = model.training
    model.eval()
    gm = symbolic_trace(model)
    with torch.no_grad():
        propagate_shapes(gm, input_size, batch_size)
    if was_training:
        model.train()
    gm.train(was_training)
    return gm

