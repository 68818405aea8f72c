"""Write a traced model as Python source that needs only torch.

Input: the train-mode and eval-mode graphs from ``export_trace``. Output: the text of one module
with one ``nn.Module`` class: every kept layer constructed in ``__init__`` under a flat, readable
attribute name (``layer1.0.conv1`` -> ``layer1_0_conv1``), loose tensors (parameters and buffers
of inlined modules, tensor constants) registered with their shapes, and a forward that reads
like the graph: one statement per node, operators written as operators. When the two graphs
differ the forward holds both, under ``if self.training:``.

Everything the file calls is looked up in torch, ``torch.nn.functional``, ``operator``, ``math``
or the builtins; anything else (a function timm or the user registered as an fx leaf, a
custom autograd function) raises ``CannotWrite`` naming it, so a broken file is never written.
"""

from __future__ import annotations

import builtins
import keyword
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .layers import SNIPPETS, CannotWrite, LayerSpec, format_value
from .trace import Traced

_INFIX = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.floordiv: "//",
    operator.mod: "%", operator.pow: "**", operator.matmul: "@", operator.and_: "&", operator.or_: "|",
    operator.xor: "^", operator.lshift: "<<", operator.rshift: ">>", operator.eq: "==", operator.ne: "!=",
    operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=",
}
_PREFIX = {operator.neg: "-", operator.pos: "+", operator.invert: "~"}

# Functions with a ``training`` flag: a value equal to the traced mode is written ``self.training``.
_TRAINING_ARG = {F.dropout: 2, F.dropout1d: 2, F.dropout2d: 2, F.dropout3d: 2, F.alpha_dropout: 2,
                 F.feature_alpha_dropout: 2, F.batch_norm: 5, F.rrelu: 3}

_RESERVED = {"self", "torch", "nn", "F", "math", "operator", "collections"}


class _SelfTraining:
    """Marks a traced ``training`` constant that stands for ``self.training``."""

    def __repr__(self) -> str:
        return "self.training"


SELF_TRAINING = _SelfTraining()


def _lookup_tables() -> list[tuple[str, Any]]:
    return [("F", F), ("torch", torch), ("operator", operator), ("math", math), ("torch.linalg", torch.linalg),
            ("torch.special", torch.special), ("torch.fft", torch.fft)]


def function_name(fn: Any) -> str:
    """The torch-only spelling of a callable in the graph, or CannotWrite."""
    name = getattr(fn, "__name__", None)
    if name:
        for prefix, mod in _lookup_tables():
            if getattr(mod, name, None) is fn:
                return f"{prefix}.{name}"
        if getattr(builtins, name, None) is fn:
            return name
    where = getattr(fn, "__module__", None) or "?"
    shown = name or repr(fn)
    raise CannotWrite(f"function {where}.{shown} is not part of torch "
                      "(an fx leaf function, e.g. registered with torch.fx.wrap or timm's register_notrace_function)")


def python_name(path: str) -> str:
    """``layer1.0.conv1`` -> ``layer1_0_conv1``: a flat attribute name a person can read."""
    name = re.sub(r"\W", "_", path.replace(".", "_")).strip("_") or "module"
    if name[0].isdigit():
        name = f"m{name}"
    if keyword.iskeyword(name) or hasattr(nn.Module, name) or name in _RESERVED:
        name = f"{name}_"
    return name


class Namer:
    """Unique names in one namespace."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.taken = set(taken or ())

    def __call__(self, want: str) -> str:
        name, i = want, 1
        while name in self.taken:
            name, i = f"{want}_{i}", i + 1
        self.taken.add(name)
        return name


@dataclass
class LooseTensor:
    """A tensor the forward reads directly (a parameter of an inlined module, a buffer, a constant)."""

    attr: str
    tensor: torch.Tensor
    source: str  # its path in the original model, or "<constant>"
    parameter: bool
    persistent: bool = True
    init: str = ""
    carried: bool = False  # its values live only in the weights file


@dataclass
class Emitted:
    """What the code generator produced."""

    source: str
    layers: list[LayerSpec]
    loose: list[LooseTensor]
    ties: list[tuple[str, str]]  # (attr.name, attr.name) parameters shared in the source model
    branched: bool
    snippets: list[str]
    notes: list[str] = field(default_factory=list)
    inputs: int = 1  # forward arguments


def _short(values: Any, dtype: torch.dtype) -> Any:
    """Floats as the shortest decimal that gives the same ``dtype`` value (0.01, not 0.009999999776482582)."""
    if isinstance(values, list):
        return [_short(v, dtype) for v in values]
    if not isinstance(values, float) or not math.isfinite(values) or dtype == torch.float64:
        return values
    for digits in range(1, 18):
        candidate = float(f"{values:.{digits}g}")
        if torch.tensor(candidate, dtype=dtype).item() == values:
            return candidate
    return values


def _tensor_init(t: torch.Tensor) -> tuple[str, bool]:
    """An expression rebuilding ``t``'s values where cheap, and whether the values need the weights file.

    Exact where it can be: constant fills, small literals, a slice repeated along the first
    dimension (per-channel copies of a blur filter). Otherwise a floating-point tensor is drawn
    from a normal with the source's mean and std (so a model trained from scratch without the
    weights file starts at a sensible scale) and other tensors are zeros; both need the weights
    file for the exact values."""
    t = t.detach()
    shape = ", ".join(str(s) for s in t.shape)
    dtype = "" if t.dtype == torch.get_default_dtype() else f", dtype={t.dtype}"
    if t.device.type == "meta":
        return f"torch.zeros({shape}{dtype})", True
    t = t.cpu()
    flat = t.reshape(-1)
    if t.numel() == 0:
        return f"torch.zeros({shape}{dtype})", False
    first = flat[0]
    if t.dim() and bool((flat == first).all()) and not (t.is_floating_point() and math.isnan(float(first))):
        value = _short(first.item(), t.dtype)
        if value == 0:
            return f"torch.zeros({shape}{dtype})", False
        if value == 1:
            return f"torch.ones({shape}{dtype})", False
        return f"torch.full(({shape}{',' if t.dim() == 1 else ''}), {format_value(value)}{dtype})", False
    if t.numel() <= 64 and t.dtype != torch.bfloat16:
        values = format_value(_short(t.tolist() if t.dim() else t.item(), t.dtype))
        return f"torch.tensor({values}{dtype})", False
    if t.dim() and t.shape[0] > 1 and bool((t == t[:1]).all()):
        inner, carried = _tensor_init(t[:1])
        if not carried:
            return f"{inner}.repeat({', '.join([str(t.shape[0])] + ['1'] * (t.dim() - 1))})", False
    if t.is_floating_point() and t.numel() > 1:
        mean, std = (_short(float(v), t.dtype) for v in (t.float().mean(), t.float().std()))
        return f"torch.empty({shape}{dtype}).normal_({format_value(mean)}, {format_value(std)})", True
    return f"torch.zeros({shape}{dtype})", True


class _Body:
    """Renders one graph as forward statements."""

    def __init__(self, traced: Traced, attr_of_module: dict[str, str], attr_of_get: dict[str, str]) -> None:
        self.traced = traced
        self.attr_of_module = attr_of_module
        self.attr_of_get = attr_of_get
        self.names: dict[fx.Node, str] = {}
        self.namer = Namer(_RESERVED | set(dir(builtins)))  # a local `max` would shadow max()
        self.lines: list[str] = []
        self.placeholders: list[tuple[str, str]] = []  # (name, as written in the signature)
        self.namedtuples: dict[str, tuple[str, ...]] = {}  # output types the file must define

    def arg(self, a: Any) -> str:
        if isinstance(a, fx.Node):
            if a.op == "get_attr":
                return f"self.{self.attr_of_get[str(a.target)]}"
            return self.names[a]
        if a is SELF_TRAINING:
            return "self.training"
        if isinstance(a, tuple) and hasattr(a, "_fields"):
            self.namedtuples[type(a).__name__] = tuple(a._fields)
            return f"{type(a).__name__}(" + ", ".join(self.arg(x) for x in a) + ")"
        if isinstance(a, tuple):
            inner = ", ".join(self.arg(x) for x in a)
            return f"({inner},)" if len(a) == 1 else f"({inner})"
        if isinstance(a, list):
            return "[" + ", ".join(self.arg(x) for x in a) + "]"
        if isinstance(a, dict):
            return "{" + ", ".join(f"{k!r}: {self.arg(v)}" for k, v in a.items()) + "}"
        if isinstance(a, slice):
            return f"slice({self.arg(a.start)}, {self.arg(a.stop)}, {self.arg(a.step)})"
        if isinstance(a, nn.Module):
            raise CannotWrite(f"a module object ({type(a).__name__}) passed as an argument")
        return format_value(a)

    def index(self, a: Any) -> str:
        """The inside of ``x[...]``: slices written with colons."""
        if isinstance(a, slice):
            parts = ["" if v is None else self.arg(v) for v in (a.start, a.stop, a.step)]
            text = f"{parts[0]}:{parts[1]}"
            return text + (f":{parts[2]}" if parts[2] else "")
        if isinstance(a, tuple) and not hasattr(a, "_fields") and a:
            return ", ".join(self.index(x) for x in a) + ("," if len(a) == 1 else "")
        return self.arg(a)

    def call_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return ", ".join([self.arg(a) for a in args] + [f"{k}={self.arg(v)}" for k, v in kwargs.items()])

    def expr(self, node: fx.Node) -> str:
        op, target, args, kwargs = node.op, node.target, node.args, node.kwargs
        if op == "call_module":
            return f"self.{self.attr_of_module[str(target)]}({self.call_args(args, kwargs)})"
        if op == "call_method":
            obj = self.arg(args[0])
            if not isinstance(args[0], fx.Node):
                obj = f"({obj})"
            return f"{obj}.{target}({self.call_args(args[1:], kwargs)})"
        if op != "call_function":
            raise CannotWrite(f"graph node of kind {op}")
        if target in _INFIX and len(args) == 2 and not kwargs:
            return f"{self.arg(args[0])} {_INFIX[target]} {self.arg(args[1])}"
        if target in _PREFIX and len(args) == 1 and not kwargs:
            return f"{_PREFIX[target]}{self.arg(args[0])}"
        if target is operator.getitem and not kwargs:
            return f"{self.arg(args[0])}[{self.index(args[1])}]"
        if target is getattr and len(args) == 2 and isinstance(args[1], str) and args[1].isidentifier():
            return f"{self.arg(args[0])}.{args[1]}"
        if isinstance(target, type) and issubclass(target, tuple) and hasattr(target, "_fields"):
            self.namedtuples[target.__name__] = tuple(target._fields)
            return f"{target.__name__}({self.call_args(args, kwargs)})"
        args, kwargs = self._training_flag(target, args, kwargs)
        return f"{function_name(target)}({self.call_args(args, kwargs)})"

    def _training_flag(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                       ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:
            pos = _TRAINING_ARG.get(target)
        except TypeError:
            pos = None
        if pos is None:
            return args, kwargs
        mode = self.traced.training
        if "training" in kwargs and kwargs["training"] is mode:
            kwargs = {**kwargs, "training": SELF_TRAINING}
        elif len(args) > pos and args[pos] is mode:
            args = args[:pos] + (SELF_TRAINING,) + args[pos + 1:]
        return args, kwargs

    @staticmethod
    def _base_name(node: fx.Node) -> str:
        """Functions and methods are numbered here, not by fx: fx counts nodes that were later dropped
        (unused ``x.device`` reads), which would make two equal graphs read differently."""
        if node.op in ("call_function", "call_method"):
            return re.sub(r"_\d+$", "", node.name) or node.name
        return node.name

    def render(self) -> list[str]:
        for node in self.traced.graph.nodes:
            if node.op == "placeholder":
                name = self.namer(node.name if node.name.isidentifier() else "x")
                self.names[node] = name
                self.placeholders.append((name, f"{name}={format_value(node.args[0])}" if node.args else name))
            elif node.op == "get_attr":
                continue
            elif node.op == "output":
                self.lines.append(f"return {self.arg(node.args[0])}")
            else:
                text = self.expr(node)
                if node.users:
                    name = self.namer(self._base_name(node))
                    self.names[node] = name
                    self.lines.append(f"{name} = {text}")
                else:
                    self.names[node] = "None"
                    self.lines.append(text)
        return self.lines


def _resolve(root: nn.Module, target: str, constants: dict[str, torch.Tensor]) -> tuple[torch.Tensor, bool, bool]:
    """The tensor a get_attr target names: (tensor, is_parameter, persistent)."""
    if target in constants:
        return constants[target], False, False
    owner_path, _, name = target.rpartition(".")
    owner = root.get_submodule(owner_path) if owner_path else root
    t = getattr(owner, name)
    if isinstance(t, nn.Parameter):
        return t, True, True
    if not isinstance(t, torch.Tensor):
        raise CannotWrite(f"'{target}' read in forward is a {type(t).__name__}, not a tensor")
    persistent = name in owner._buffers and name not in owner._non_persistent_buffers_set
    return t, False, persistent


def _collect(root: nn.Module, graphs: list[Traced], specs: dict[int, LayerSpec | None], attr_namer: Namer
             ) -> tuple[dict[str, str], list[LayerSpec], dict[str, str], list[LooseTensor]]:
    attr_of_module: dict[str, str] = {}
    layers: list[LayerSpec] = []
    seen_layers: dict[int, LayerSpec] = {}
    attr_of_get: dict[str, str] = {}
    loose: list[LooseTensor] = []
    loose_by_id: dict[int, LooseTensor] = {}
    for traced in graphs:
        for node in traced.graph.nodes:
            target = str(node.target)
            if node.op == "call_module" and target not in attr_of_module:
                m = root.get_submodule(target)
                spec = specs.get(id(m))
                if spec is None:
                    raise CannotWrite(f"module '{target}' ({type(m).__name__}) stayed opaque in the trace")
                if id(m) not in seen_layers:
                    spec.attr = attr_namer(python_name(target))
                    seen_layers[id(m)] = spec
                    layers.append(spec)
                attr_of_module[target] = seen_layers[id(m)].attr
            elif node.op == "get_attr" and target not in attr_of_get:
                t, is_param, persistent = _resolve(root, target, traced.constants)
                if id(t) not in loose_by_id:
                    want = "const" if target.startswith("_tensor_constant") else python_name(target)
                    lt = LooseTensor(attr_namer(want), t, "<constant>" if want == "const" else target, is_param,
                                     persistent)
                    lt.init, lt.carried = _tensor_init(t)
                    lt.persistent = lt.persistent or lt.carried  # values the code cannot rebuild travel in the weights
                    loose_by_id[id(t)] = lt
                    loose.append(lt)
                attr_of_get[target] = loose_by_id[id(t)].attr
    return attr_of_module, layers, attr_of_get, loose


def _ties(layers: list[LayerSpec], loose: list[LooseTensor]) -> list[tuple[str, str]]:
    """Parameters the source model shares between layers: written as one parameter in the export."""
    first: dict[int, str] = {}
    ties: list[tuple[str, str]] = []
    for lt in loose:
        if lt.parameter:
            first.setdefault(id(lt.tensor), lt.attr)
    for spec in layers:
        m = spec.module
        params = m._parameters.items() if spec.own_only else m.named_parameters(remove_duplicate=False)
        for name, p in params:
            if p is None:
                continue
            here = f"{spec.attr}.{name}"
            if id(p) in first and first[id(p)] != here:
                ties.append((here, first[id(p)]))
            else:
                first.setdefault(id(p), here)
    return ties


def _init_lines(layers: list[LayerSpec], loose: list[LooseTensor], ties: list[tuple[str, str]]) -> list[str]:
    lines = ["super().__init__()"]
    for spec in layers:
        lines.append(f"self.{spec.attr} = {spec.code}")
    for lt in loose:
        if lt.parameter:
            grad = "" if lt.tensor.requires_grad else ", requires_grad=False"
            lines.append(f"self.{lt.attr} = nn.Parameter({lt.init}{grad})")
        else:
            persistent = "" if lt.persistent else ", persistent=False"
            lines.append(f"self.register_buffer({lt.attr!r}, {lt.init}{persistent})")
        if lt.carried:
            lines[-1] += "  # values: the weights file" + (" (this draw matches their mean and std)"
                                                             if ".normal_(" in lt.init else "")
    for here, there in ties:
        lines.append(f"self.{here} = self.{there}  # shared in the source model")
    return lines


def _forward_lines(train: list[str], evl: list[str]) -> tuple[list[str], bool]:
    """One body when the modes agree; else the shared opening once, then ``if self.training:``.

    A shared line is the same statement over the same names in both graphs, so what it defines
    means the same thing in either branch."""
    if train == evl:
        return train, False
    common = 0
    while common < min(len(train), len(evl)) - 1 and train[common] == evl[common]:
        common += 1
    return [*train[:common], "if self.training:", *[f"    {line}" for line in train[common:]], *evl[common:]], True


def _signature(body: _Body) -> str:
    return ", ".join(["self", *[written for _, written in body.placeholders]])


def emit(root: nn.Module, train: Traced, evl: Traced, specs: dict[int, LayerSpec | None], *, class_name: str,
         header: str) -> Emitted:
    """The source of the exported module; CannotWrite when some part has no torch-only spelling."""
    attr_namer = Namer({"training", "forward"})
    attr_of_module, layers, attr_of_get, loose = _collect(root, [train, evl], specs, attr_namer)
    ties = _ties(layers, loose)
    train_body = _Body(train, attr_of_module, attr_of_get)
    eval_body = _Body(evl, attr_of_module, attr_of_get)
    train_lines, eval_lines = train_body.render(), eval_body.render()
    if [p[0] for p in train_body.placeholders] != [p[0] for p in eval_body.placeholders]:
        raise CannotWrite("the train-mode and eval-mode forwards take different arguments")
    forward, branched = _forward_lines(train_lines, eval_lines)
    snippets = sorted({s.snippet for s in layers if s.snippet})
    namedtuples = {**train_body.namedtuples, **eval_body.namedtuples}
    _check_names(class_name, snippets, namedtuples)
    out = [f'"""{header}"""', "", "from __future__ import annotations", ""]
    out += _preamble(forward, snippets, namedtuples)
    out += ["", f"class {class_name}(nn.Module):"]
    out += ["    def __init__(self) -> None:", *[f"        {line}" for line in _init_lines(layers, loose, ties)], ""]
    out += [f"    def forward({_signature(train_body)}):", *[f"        {line}" for line in forward], ""]
    source = "\n".join(out)
    source = source.replace("\n\n\n\n", "\n\n\n")
    return Emitted(source, layers, loose, ties, branched, snippets, _loose_notes(loose),
                   inputs=len(train_body.placeholders))


def _check_names(class_name: str, snippets: list[str], namedtuples: dict[str, Any]) -> None:
    if class_name in _RESERVED or class_name in snippets or class_name in namedtuples:
        raise CannotWrite(f"the class name '{class_name}' clashes with a name the file defines or imports "
                          "(pick another with --class-name)")
    if any(n in _RESERVED or n == class_name for n in namedtuples):
        raise CannotWrite(f"an output type is named like a reserved name: {sorted(namedtuples)}")


def _preamble(forward: list[str], snippets: list[str], namedtuples: dict[str, Any]) -> list[str]:
    """Imports the forward needs, output namedtuples, and the snippets' helper classes."""
    uses_math = any("math." in line for line in forward) or "Conv2dSame" in snippets
    uses_operator = any("operator." in line for line in forward)
    out: list[str] = []
    if namedtuples:
        out.append("import collections")
    if uses_math:
        out.append("import math")
    if uses_operator:
        out.append("import operator")
    if uses_math or uses_operator or namedtuples:
        out.append("")
    out += ["import torch", "import torch.nn.functional as F", "from torch import nn", ""]
    for name, fields in sorted(namedtuples.items()):
        out += [f"{name} = collections.namedtuple({name!r}, {list(fields)!r})"]
    if namedtuples:
        out.append("")
    for name in snippets:
        out += ["", SNIPPETS[name].strip("\n"), ""]
    return out


def _loose_notes(loose: list[Any]) -> list[str]:
    """What a user should know about tensors the file carries outside its layers."""
    notes = []
    frozen = [lt for lt in loose
              if lt.source == "<constant>" and lt.tensor.is_floating_point() and lt.tensor.numel() > 1]
    if frozen:
        notes.append(f"{len(frozen)} tensor(s) the forward computed when it was traced (an eval-mode cache, a tensor "
                     "built in forward) are constants in the file: they will not follow training "
                     f"({', '.join(lt.attr for lt in frozen[:5])}{' ...' if len(frozen) > 5 else ''})")
    carried = [lt for lt in loose if lt.carried]
    if carried:
        notes.append(f"{len(carried)} tensor(s) read directly in forward get their values only from the weights file: "
                     + ", ".join(lt.source for lt in carried[:5]) + (" ..." if len(carried) > 5 else ""))
    return notes
