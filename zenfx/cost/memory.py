"""Activation memory of one forward pass, from the shapes already on a traced graph.

Model: the graph runs node by node in its execution order (the fx node order). A node that
allocates adds the bytes of its output(s) to the live set *before* any of its inputs is freed, so
the moment a conv runs both its input and its output are live. A storage is freed right after the
last node that reads it (or any view of it); the graph outputs stay live to the end. The peak of
the live set over the walk is the peak activation memory; the model input counts as an
activation, parameters and buffers (``get_attr``) do not.

What allocates and what does not (decided once, here):

* views share their input's storage and allocate nothing: ``view``/``reshape``/``flatten``/
  ``permute``/``transpose``/``squeeze``/``unsqueeze``/``expand``/``split``/``chunk``/
  ``getitem``/``contiguous``/``detach`` and friends, and ``nn.Identity``/``nn.Flatten``/
  ``nn.Dropout`` (identity in eval). ``reshape``/``contiguous`` after a ``permute`` really copy
  in eager PyTorch; we count them as views (a small under-count for transformers, documented in
  docs/report.md).
* in-place ops write into their first input's storage: modules built with ``inplace=True``,
  methods ending in ``_`` (``add_``, ``relu_``), functions called with ``inplace=True`` and
  ``operator.iadd``/``imul``.
* everything else allocates its output. Opaque leaf modules (timm's not-traceable blocks) count
  only their output: their internal temporaries are invisible to a graph-level walk.

Bytes use the report's dtype for floating tensors (a graph traced in float32 and reported in
float16 halves), and the tensor's own dtype for integer/bool tensors. The batch size is the one
the graph was traced at: shapes on the nodes already include it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..graph import numel, shape, tensor_shapes

VIEW_METHODS = {
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute", "transpose", "t",
    "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "split", "chunk", "unbind",
    "contiguous", "detach", "as_strided", "movedim", "swapaxes", "__getitem__", "type_as", "to",
    "float", "unfold",
}
VIEW_FUNCTIONS = {
    torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze,
    torch.split, torch.chunk, torch.unbind, torch.narrow, torch.select, torch.movedim, torch.swapaxes,
    torch.t, torch.detach, operator.getitem, torch.Tensor.view, torch.Tensor.reshape,
}
INPLACE_FUNCTIONS = {operator.iadd, operator.imul, operator.isub, operator.itruediv}
VIEW_MODULES: tuple[type[nn.Module], ...] = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout,
                                             nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@dataclass
class NodeMemory:
    name: str
    module_path: str
    kind: str  # "alloc", "view", "inplace", "none"
    bytes: int  # bytes this node allocates (0 for views / in-place / non-tensors)
    live_after: int  # live bytes right after the node ran (before frees)


@dataclass
class ActivationMemory:
    peak_bytes: int
    peak_node: str
    largest_bytes: int
    largest_node: str
    largest_shape: tuple[int, ...] | None
    total_allocated_bytes: int
    dtype: str
    nodes: list[NodeMemory] = field(default_factory=list)

    def by_module(self) -> dict[str, int]:
        """Bytes allocated by nodes under each module path (children included; ``""`` is all)."""
        return sum_by_module((n.module_path, n.bytes) for n in self.nodes)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "peak_at": self.peak_node,
            "largest_activation_bytes": self.largest_bytes,
            "largest_activation": self.largest_node,
            "largest_activation_shape": list(self.largest_shape) if self.largest_shape else None,
            "total_allocated_bytes": self.total_allocated_bytes,
            "dtype": self.dtype,
        }


def module_prefixes(path: str) -> list[str]:
    """``"layer1.0.conv1"`` -> ``["layer1", "layer1.0", "layer1.0.conv1"]``: every module a path lies under."""
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def sum_by_module(items: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Per-node figures (module path, value) totalled per module, children included; ``""`` is all."""
    out: dict[str, float] = {}
    for path, value in items:
        for key in ["", *module_prefixes(path)]:
            out[key] = out.get(key, 0) + value
    return out


def node_module_path(gm: fx.GraphModule, node: fx.Node) -> str:
    """The module path a node belongs to: its target for call_module, else fx's nn_module_stack."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        last = list(stack.values())[-1]
        path = last[0] if isinstance(last, tuple) else str(last)
        return str(path).split("@")[0]
    return ""


def _nbytes(node: fx.Node, elem: int) -> int:
    """Bytes of every tensor ``node`` yields (its shape record, read through ``zenfx.graph``)."""
    return sum(numel(s) for s in tensor_shapes(node)) * elem


def _elem_size(node: fx.Node, dtype: torch.dtype) -> int:
    own = node.meta.get("dtype")
    if isinstance(own, torch.dtype) and not own.is_floating_point:
        return torch.empty((), dtype=own).element_size()
    return torch.empty((), dtype=dtype).element_size()


def storage_kind(gm: fx.GraphModule, node: fx.Node) -> str:
    """How a node gets its output: ``alloc`` (new storage), ``view`` / ``inplace`` (an input's), ``none``."""
    if node.op in ("get_attr", "output"):
        return "none"
    if node.op == "placeholder":
        return "alloc"
    if not tensor_shapes(node):
        return "none"  # ints, sizes, asserts
    if not any(tensor_shapes(a) and a.op != "get_attr" for a in node.all_input_nodes):
        return "alloc"
    if node.op == "call_module":
        return _module_kind(gm, node)
    if node.op == "call_method":
        name = str(node.target)
        if name in VIEW_METHODS:
            return "view"
        return "inplace" if name.endswith("_") and not name.endswith("__") else "alloc"
    if node.op == "call_function":
        return _function_kind(node)
    return "alloc"


def _module_kind(gm: fx.GraphModule, node: fx.Node) -> str:
    try:
        mod = gm.get_submodule(str(node.target))
    except AttributeError:
        return "alloc"
    if isinstance(mod, VIEW_MODULES):
        return "view"
    return "inplace" if getattr(mod, "inplace", False) is True else "alloc"


def _function_kind(node: fx.Node) -> str:
    if node.kwargs.get("inplace") is True:
        return "inplace"
    try:
        if node.target in INPLACE_FUNCTIONS:
            return "inplace"
        if node.target in VIEW_FUNCTIONS:
            return "view"
    except TypeError:
        pass
    name = getattr(node.target, "__name__", "")
    if name in ("dropout", "identity") and not node.kwargs.get("training", False):
        return "view"
    return "alloc"


def activation_memory(gm: fx.GraphModule, dtype: torch.dtype = torch.float32) -> ActivationMemory:
    """Peak live activation bytes and the largest single activation of ``gm``'s forward pass.

    ``gm`` must carry ``node.meta['shape']`` (``zenfx.trace`` does this) at the batch size wanted.
    """
    nodes = list(gm.graph.nodes)
    storage, kinds, size = _storages(gm, nodes, dtype)
    free_at = _free_points(nodes, storage)
    return _walk_live(gm, nodes, kinds, size, free_at, dtype)


def _storages(gm: fx.GraphModule, nodes: list[fx.Node],
              dtype: torch.dtype) -> tuple[dict[fx.Node, fx.Node], dict[fx.Node, str], dict[fx.Node, int]]:
    """(node -> the node that allocated its storage, node -> storage kind, allocating node -> bytes).

    A view or in-place op whose inputs own no storage (e.g. of a parameter) allocates after all.
    """
    storage: dict[fx.Node, fx.Node] = {}
    kinds: dict[fx.Node, str] = {}
    size: dict[fx.Node, int] = {}
    for n in nodes:
        kind = storage_kind(gm, n)
        if kind in ("view", "inplace"):
            base = next((a for a in n.all_input_nodes if a in storage), None)
            if base is None:
                kind = "alloc"
            else:
                storage[n] = storage[base]
        if kind == "alloc":
            storage[n] = n
            size[n] = _nbytes(n, _elem_size(n, dtype))
        kinds[n] = kind
    return storage, kinds, size


def _free_points(nodes: list[fx.Node], storage: dict[fx.Node, fx.Node]) -> dict[int, list[fx.Node]]:
    """Position -> storages freed right after the node there: after the last reader of the storage
    or of any view of it; graph outputs stay live to the end (position ``len(nodes)``)."""
    pos = {n: i for i, n in enumerate(nodes)}
    end = len(nodes)
    last_use: dict[fx.Node, int] = {}
    for n in nodes:
        if n not in storage:
            continue
        s = storage[n]
        users = [pos[u] for u in n.users]
        if any(u.op == "output" for u in n.users):
            users.append(end)
        last_use[s] = max([last_use.get(s, pos[n]), pos[n], *users])
    free_at: dict[int, list[fx.Node]] = {}
    for s, i in last_use.items():
        free_at.setdefault(i, []).append(s)
    return free_at


def _walk_live(gm: fx.GraphModule, nodes: list[fx.Node], kinds: dict[fx.Node, str], size: dict[fx.Node, int],
               free_at: dict[int, list[fx.Node]], dtype: torch.dtype) -> ActivationMemory:
    """Run the graph in order: each allocation joins the live set before its inputs are freed; the
    peak of the live set and the largest single allocation are the figures reported."""
    live = peak = 0
    peak_node = largest_node = ""
    largest = 0
    largest_shape: tuple[int, ...] | None = None
    records: list[NodeMemory] = []
    for i, n in enumerate(nodes):
        b = size.get(n, 0) if kinds[n] == "alloc" else 0
        live += b
        if live > peak:
            peak, peak_node = live, n.name
        if b > largest:
            largest, largest_node = b, n.name
            largest_shape = shape(n)
        if n.op not in ("output",):
            records.append(NodeMemory(n.name, node_module_path(gm, n), kinds[n], b, live))
        for s in free_at.get(i, []):
            live -= size.get(s, 0)
    return ActivationMemory(peak, peak_node, largest, largest_node, largest_shape,
                            sum(r.bytes for r in records), str(dtype).replace("torch.", ""), records)
