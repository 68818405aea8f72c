"""Multiply-accumulate counts (MACs) for any ``nn.Module``, without real compute.

The default counter is ``torch.utils.flop_counter.FlopCounterMode`` run on meta tensors (for a
model built on the meta device) or under ``FakeTensorMode`` (for a model with real weights), so a
600x600 EfficientNet-B7 costs no memory and no arithmetic. FlopCounterMode counts FLOPs as
2 x MACs for matmul/conv-like ops; we report MACs (``flops // 2``), which is the unit torchvision
publishes in its weights metadata (``meta["_ops"]``, labelled GFLOPS but really GMACs).

Two attention traps are handled, because both silently under-count transformers:

* ``nn.MultiheadAttention`` in eval mode under ``torch.no_grad()`` takes a fused "fast path"
  (``aten._native_multi_head_attention``) that FlopCounterMode does not know. We disable the fast
  path for the duration of the count (``torch.backends.mha.set_fastpath_enabled(False)``), which
  routes it through ``F.multi_head_attention_forward`` and plain linear/SDPA ops.
* On CPU (and fake CPU tensors) ``F.scaled_dot_product_attention`` dispatches to
  ``aten._scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode's registry lacks.
  We pass a formula for it through ``custom_mapping``: B*H*L*S*(E+Ev) MACs, the same convention as
  FlopCounterMode's own SDPA formula (QK^T plus attention-times-V).

Only matmul/conv-like ops are counted (conv, linear/addmm, mm, bmm, baddbmm, SDPA), as in
torchvision's figures; element-wise ops, norms and pooling cost zero MACs in this convention.

``fvcore`` is the cross-check counter (``counter="fvcore"``): it traces with ``torch.jit`` on real
CPU tensors and, by its own convention, also counts batch norm, upsampling and adaptive pooling,
so on CNNs it reads a few percent above the default counter.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..devices import module_device
from ..errors import ShapeError, UsageError

COUNTERS = ("torch", "fvcore")

# The unit torchvision publishes in meta["_ops"]; keep the name so nobody confuses FLOPs and MACs.
FLOPS_PER_MAC = 2


@dataclass
class MacCount:
    """MACs of one forward pass, by operator and by module path (``""`` is the whole model).

    ``by_module[path]`` includes everything that ran inside that module (children included), so
    a depth-K view is just the keys with K dotted components.
    """

    total: int
    counter: str
    input_shape: tuple[int, ...]
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return self.total

    @property
    def flops(self) -> int:
        return FLOPS_PER_MAC * self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.total,
            "flops": self.flops,
            "counter": self.counter,
            "input_shape": list(self.input_shape),
            "by_op": dict(self.by_op),
            "unsupported_ops": dict(self.unsupported_ops),
        }


# --------------------------------------------------------------------------- helpers


def _sdpa_cpu_flops(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """FLOPs (2 x MACs) of ``aten._scaled_dot_product_flash_attention_for_cpu``.

    q: (B, H, L, E), k: (B, Hk, S, E), v: (B, Hk, S, Ev) -> 2 * B*H*L*S*(E + Ev). Grouped-query
    attention (Hk < H) broadcasts K/V heads, so the query head count is the one that matters.
    """
    # FlopCounterMode's custom_mapping wraps formulas so that tensors arrive as their shapes.
    q, k, v = (tuple(getattr(t, "shape", t)) for t in (query, key, value))
    *bq, h, seq_q, e = q
    s = k[-2]
    ev = v[-1]
    b = 1
    for d in bq:
        b *= int(d)
    return FLOPS_PER_MAC * b * int(h) * int(seq_q) * int(s) * (int(e) + int(ev))


def _custom_mapping() -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _sdpa_cpu_flops
    return mapping


@contextlib.contextmanager
def mha_fastpath_disabled() -> Iterator[None]:
    """Route nn.MultiheadAttention / TransformerEncoderLayer through countable ops."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def input_shape(input_size: Sequence[int], batch_size: int = 1) -> tuple[int, ...]:
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    dims = tuple(int(s) for s in input_size)
    if not dims or min(dims) <= 0:
        raise UsageError(f"input size {tuple(input_size)} must be positive integers")
    return (int(batch_size), *dims)


class _LayerTracker:
    """Forward hooks that remember the innermost module running, to name it when a forward fails."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.stack: list[tuple[str, str, tuple[Any, ...]]] = []
        self.failed: tuple[str, str, tuple[Any, ...]] | None = None
        self.handles: list[Any] = []

    def __enter__(self) -> _LayerTracker:
        for name, sub in self.module.named_modules():
            if not name:
                continue
            self.handles.append(sub.register_forward_pre_hook(self._pre(name, type(sub).__name__)))
            self.handles.append(sub.register_forward_hook(self._post))
        return self

    def _pre(self, name: str, cls: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            self.stack.append((name, cls, shapes))

        return hook

    def _post(self, _m: nn.Module, _args: Any, _out: Any) -> None:
        if self.stack:
            self.stack.pop()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None and self.stack and self.failed is None:
            self.failed = self.stack[-1]
        for h in self.handles:
            h.remove()
        self.handles.clear()


def _shape_error(tracker: _LayerTracker, shape: tuple[int, ...], exc: BaseException) -> ShapeError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if tracker.failed is not None:
        name, cls, shapes = tracker.failed
        got = ", ".join(map(str, shapes)) or "?"
        return ShapeError(f"layer '{name}' ({cls}) cannot run on input of shape {got}: {msg}")
    return ShapeError(f"model cannot run on input of shape {shape}: {msg}")


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


@contextlib.contextmanager
def fake_or_meta_input(module: nn.Module, shape: tuple[int, ...],
                       dtype: torch.dtype = torch.float32) -> Iterator[torch.Tensor]:
    """An input of ``shape`` that costs nothing: meta for meta models, fake otherwise."""
    device = module_device(module)
    if device.type == "meta":
        yield torch.empty(shape, device="meta", dtype=dtype)
        return
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True), quiet_fake_tensor_log():
        yield torch.empty(shape, device=device, dtype=dtype)


@contextlib.contextmanager
def quiet_fake_tensor_log() -> Iterator[None]:
    """FakeTensorMode logs a traceback before re-raising a shape failure; we report it ourselves."""
    log = logging.getLogger("torch._subclasses.fake_tensor")
    before = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(before)


def _strip_root(name: str) -> str:
    """ModuleTracker names are ``RootClass.a.b``; zenfx uses module paths relative to the root."""
    return name.split(".", 1)[1] if "." in name else ""


# --------------------------------------------------------------------------- counters


def _count_torch(module: nn.Module, shape: tuple[int, ...]) -> MacCount:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    tracker = _LayerTracker(module)
    try:
        with _eval_mode(module), mha_fastpath_disabled(), torch.no_grad(), \
                fake_or_meta_input(module, shape) as x, tracker, counter:
            module(x)
    except ShapeError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
        from ..tracing import data_dependent

        if not data_dependent(exc) or module_device(module).type == "meta":
            raise _shape_error(tracker, shape, exc) from None
        # A forward that needs real values (Tensor.item(), .tolist()) cannot run on fake tensors:
        # count on one eager forward of a real random input instead (real compute, same counter).
        counter, tracker = FlopCounterMode(display=False, custom_mapping=_custom_mapping()), _LayerTracker(module)
        with _eval_mode(module), mha_fastpath_disabled(), torch.no_grad(), tracker, counter:
            module(torch.randn(shape, device=module_device(module)))
    counts = counter.get_flop_counts()
    glob = counts.get("Global", {})
    by_op = {_op_name(k): int(v) // FLOPS_PER_MAC for k, v in glob.items()}
    total = int(sum(glob.values())) // FLOPS_PER_MAC
    recorded: dict[str, int] = {}
    for name, ops in counts.items():
        if name == "Global":
            continue
        path = _strip_root(name).split("@")[0]
        if path:
            recorded[path] = recorded.get(path, 0) + int(sum(ops.values())) // FLOPS_PER_MAC
    return MacCount(total, "torch", shape, by_op, rollup_by_module(recorded, total))


def rollup_by_module(recorded: dict[str, int], total: int) -> dict[str, int]:
    """Per-path MACs including descendants, for every prefix of every recorded path.

    FlopCounterMode records a module only while it is on the call stack. In eager models a
    container (``layer1``) is called and its entry already includes its children; in an fx
    GraphModule only leaf modules are called, so ``layer1`` is absent. We take each recorded
    path's *exclusive* MACs (minus its nearest recorded descendants) and sum them up every prefix,
    which gives the same answer in both cases.
    """

    def parent(path: str) -> str:
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            cand = ".".join(parts[:cut])
            if cand in recorded:
                return cand
        return ""

    exclusive = dict(recorded)
    for path, macs in recorded.items():
        p = parent(path)
        if p:
            exclusive[p] -= macs
    out: dict[str, int] = {"": total}
    for path, macs in exclusive.items():
        parts = path.split(".")
        for i in range(1, len(parts) + 1):
            key = ".".join(parts[:i])
            out[key] = out.get(key, 0) + macs
    return out


def _op_name(op: Any) -> str:
    name = str(op)
    return name[5:] if name.startswith("aten.") else name


def _fvcore_sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(inputs[i]) for i in range(3))
    *bq, h, seq_q, e = q
    b = 1
    for d in bq:
        b *= int(d)
    return b * int(h) * int(seq_q) * int(k[-2]) * (int(e) + int(v[-1]))


def _materialize_cpu(module: nn.Module) -> nn.Module:
    """A CPU copy with real (uninitialised-then-filled) weights for counters that need real tensors."""
    if module_device(module).type != "meta":
        return module
    clone = copy.deepcopy(module)
    clone.to_empty(device="cpu")
    with torch.no_grad():
        for p in clone.parameters():
            p.normal_(0, 0.02)
        for name, b in clone.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if "var" in name else 0.0)
            else:
                b.zero_()
    return clone


def _count_fvcore(module: nn.Module, shape: tuple[int, ...]) -> MacCount:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis
    except ImportError as exc:  # pragma: no cover - fvcore is a dependency
        raise UsageError(f"the fvcore counter needs fvcore installed ({exc})") from None
    real = _materialize_cpu(module)
    device = module_device(real)
    x = torch.zeros(shape, device=device)
    tracker = _LayerTracker(real)
    try:
        with _eval_mode(real), mha_fastpath_disabled(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(real, (x,))
            fca.set_op_handle("aten::scaled_dot_product_attention", _fvcore_sdpa_handle)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            with tracker:
                total = int(fca.total())
            by_op = {str(k): int(v) for k, v in fca.by_operator().items()}
            by_module = {str(k): int(v) for k, v in fca.by_module().items()}
            unsupported = {str(k): int(v) for k, v in fca.unsupported_ops().items()}
    except ShapeError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
        raise _shape_error(tracker, shape, exc) from None
    by_module[""] = total
    return MacCount(total, "fvcore", shape, by_op, by_module, unsupported)


def count(module: nn.Module, input_size: Sequence[int], batch_size: int = 1,
          counter: str = "torch") -> MacCount:
    """MACs of ``module`` on one input of ``(batch_size, *input_size)``, by op and by module."""
    shape = input_shape(input_size, batch_size)
    if counter == "torch":
        return _count_torch(module, shape)
    if counter == "fvcore":
        return _count_fvcore(module, shape)
    raise UsageError(f"unknown MAC counter '{counter}'", hint=f"choose one of {', '.join(COUNTERS)}")


def count_macs(module: nn.Module, input_size: Sequence[int], batch_size: int = 1) -> int:
    """Total multiply-accumulates of one forward pass (FLOPs = 2 x MACs), no real compute.

    ``input_size`` is the per-sample size, e.g. ``(3, 224, 224)``. Works on meta-device modules and
    real-weight modules alike (the latter under FakeTensorMode). Raises ``ShapeError`` naming the
    layer when the model cannot run at that size.
    """
    return count(module, input_size, batch_size, "torch").total


def macs_by_depth(by_module: dict[str, int], depth: int) -> dict[str, int]:
    """The entries of ``by_module`` exactly ``depth`` levels below the root (``depth=0``: total)."""
    if depth <= 0:
        return {"": by_module.get("", 0)}
    return {k: v for k, v in by_module.items() if k and k.count(".") + 1 == depth}

