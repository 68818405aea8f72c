"""``zenfx.export_model``: a model, spec or genome as a standalone Python module that needs only torch.

Why not ``GraphModule.to_folder``: it pickles layers, writes absolute paths and bakes
``training=False`` into timm's batch-norm calls, so the result neither stands alone nor trains.
Here every layer is written as a constructor call, the forward as readable statements, train and
eval behaviour are kept (``self.training`` branches, dropout and drop-path as modules), and the
weights go to an optional ``state_dict`` file that loads with ``strict=True``.

Before anything is written the generated class is built from its own source, the weights are
loaded into it and its eval output is compared with the source model's on a seeded batch: a file
that does not reproduce the model is never written. Pieces that have no torch-only spelling (a
leaf function registered with ``torch.fx.wrap``, a module whose forward fx cannot trace) raise a
one-line error naming the piece.
"""

from __future__ import annotations

import ast
import io
import keyword
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..runlog import atomic_write_bytes
from .codegen import Emitted, emit
from .layers import CannotWrite, NotExportableError
from .trace import trace_for_export

ALLOWED_IMPORTS = {"__future__", "collections", "math", "operator", "torch", "torch.nn", "torch.nn.functional"}


__all__ = ["ExportResult", "NotExportableError", "build_exported", "export_model"]


@dataclass
class ExportResult:
    """What ``export_model`` produced (and wrote, when given a path)."""

    model: str
    class_name: str
    source: str  # the generated Python source
    state_dict: dict[str, torch.Tensor]
    module_path: str | None = None
    weights_path: str | None = None
    input_size: tuple[int, int, int] | None = None
    params: int = 0  # in the exported class
    source_params: int = 0  # in the source model
    layers: int = 0
    loose_tensors: int = 0
    branched: bool = False  # the forward holds an ``if self.training:`` branch
    snippets: list[str] = field(default_factory=list)
    checked: bool = False
    max_abs_diff: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return [p for p in (self.module_path, self.weights_path) if p]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "class_name": self.class_name, "files": self.files,
            "module_path": self.module_path, "weights_path": self.weights_path,
            "input_size": list(self.input_size) if self.input_size else None,
            "params": self.params, "source_params": self.source_params, "layers": self.layers,
            "loose_tensors": self.loose_tensors, "branched": self.branched, "snippets": self.snippets,
            "checked": self.checked, "max_abs_diff": self.max_abs_diff, "lines": self.source.count("\n") + 1,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- loading


@dataclass
class _Source:
    module: nn.Module
    label: str  # how the header names the source: never an absolute path
    class_name: str
    input_size: tuple[int, int, int] | None


def _camel(name: str) -> str:
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", name) if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "Exported"
    return f"Net{text}" if text[0].isdigit() else text


def _is_genome_path(spec: str) -> bool:
    return spec.endswith(".json")


def _load_genome(genome: Any) -> _Source:
    try:
        from ..genome import build
    except ImportError:
        raise UsageError("this zenfx has no genome support (zenfx.mutation.build is missing)") from None
    if isinstance(genome, (str, Path)):
        path = Path(genome)
        if not path.is_file():
            raise UsageError(f"genome file '{genome}' does not exist")
        from ..genome import Genome

        g = Genome.load(path)
        label = f"genome {path.name} (seed {_safe_label(g.seed)}, {len(g.edits)} edit(s))"
    else:
        g = genome
        label = f"a genome (seed {_safe_label(g.seed)}, {len(g.edits)} edit(s))"
    module = build(g)
    seed = _safe_label(g.seed)
    seed_name = type(module).__name__ if ".py:" in seed else seed.split(":")[-1].rsplit(".", 1)[-1]
    return _Source(module, label, _camel(seed_name) + "Mutant", tuple(g.input_size))  # type: ignore[arg-type]


def _safe_label(spec: str) -> str:
    """A spec as the header may show it: file paths reduced to their base name."""
    head, sep, tail = spec.rpartition(":")
    if sep and (os.sep in head or head.endswith(".py")):
        return f"{os.path.basename(head)}:{tail}"
    if os.sep in spec:
        return os.path.basename(spec)
    return spec


def _load(model: Any, kwargs: dict[str, Any] | None) -> _Source:
    from ..loading import resolve_model

    if isinstance(model, nn.Module):
        if kwargs:
            raise UsageError("constructor arguments were given with an nn.Module instance")
        size = resolve_model(model).default_input_size
        return _Source(model, f"a {type(model).__name__} instance", _camel(type(model).__name__), size)
    if isinstance(model, Path) or (isinstance(model, str) and _is_genome_path(model)):
        if kwargs:
            raise UsageError("constructor arguments were given with a genome (it carries its own)")
        return _load_genome(model)
    if not isinstance(model, str):
        if hasattr(model, "edits") and hasattr(model, "seed"):
            return _load_genome(model)
        raise UsageError(f"cannot export a {type(model).__name__}: give a model spec, an nn.Module or a genome")
    loaded = resolve_model(model, kwargs)
    registry = loaded.source in ("torchvision", "timm")
    name = _camel(loaded.name) if registry else _camel(type(loaded.module).__name__)
    label = _safe_label(loaded.spec)
    if kwargs:
        label += " (" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
    return _Source(loaded.module, label, name, loaded.default_input_size)


# --------------------------------------------------------------------------- checks


def _check_source(source: str) -> None:
    """The generated text must parse and import nothing but torch and the standard library."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        bad = [n for n in names if n not in ALLOWED_IMPORTS]
        if bad:
            raise AssertionError(f"generated module imports {bad}")


def _state_dict(emitted: Emitted) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for spec in emitted.layers:
        m = spec.module
        if spec.own_only:
            own = {k: v for k, v in m._parameters.items() if v is not None}
            own.update({k: v for k, v in m._buffers.items()
                        if v is not None and k not in m._non_persistent_buffers_set})
        else:
            own = m.state_dict(keep_vars=True)
        for key, value in own.items():
            sd[f"{spec.attr}.{key}"] = value.detach().clone().cpu()
    for lt in emitted.loose:
        if lt.persistent:
            sd[lt.attr] = lt.tensor.detach().clone().cpu()
    return sd


def build_exported(source: str, class_name: str, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Build the class from generated source (in a private namespace) and load ``state_dict`` strictly."""
    namespace: dict[str, Any] = {"__name__": f"zenfx_exported_{class_name}"}
    exec(compile(source, f"<zenfx export {class_name}>", "exec"), namespace)  # noqa: S102 - our own output
    net = namespace[class_name]()
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
    return net


def _max_diff(a: Any, b: Any) -> float:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return float("inf")
        if not a.is_floating_point():
            return 0.0 if torch.equal(a, b) else float("inf")
        return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return max([_max_diff(x, y) for x, y in zip(a, b, strict=True)] or [0.0])
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max([_max_diff(a[k], b[k]) for k in a] or [0.0])
    return 0.0 if a == b else float("inf")


def _scale(a: Any) -> float:
    if isinstance(a, torch.Tensor):
        return float(a.float().abs().max()) if a.numel() and a.is_floating_point() else 1.0
    if isinstance(a, (tuple, list)):
        return max([_scale(x) for x in a] or [1.0])
    if isinstance(a, dict):
        return max([_scale(x) for x in a.values()] or [1.0])
    return 1.0


def _compare(model: nn.Module, net: nn.Module, input_size: tuple[int, int, int], tol: float) -> float:
    modes = [(m, m.training) for m in model.modules()]
    gen = torch.Generator().manual_seed(0)
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    x = torch.randn(2, *input_size, generator=gen).to(device)
    net.to(device)
    model.eval()
    net.eval()
    try:
        with torch.no_grad():
            want, got = model(x), net(x)
    except Exception as exc:
        raise UsageError(f"cannot check the export at input size {tuple(input_size)}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}",
                         hint="pass a suitable --input-size") from None
    finally:
        for m, mode in modes:
            m.training = mode
    diff = _max_diff(want, got)
    if not diff <= tol * max(1.0, _scale(want)):
        raise NotExportableError(f"the exported {type(net).__name__} does not reproduce the source model "
                                 f"(max abs difference {diff:.3g} in eval mode); nothing was written")
    train_diff = _compare_train(model, net, x)
    if not train_diff <= tol * max(1.0, _scale(want)):
        raise NotExportableError(f"the exported {type(net).__name__} does not reproduce the source model in "
                                 f"train mode (max abs difference {train_diff:.3g}); nothing was written")
    return max(diff, train_diff)


def _compare_train(model: nn.Module, net: nn.Module, x: torch.Tensor) -> float:
    """One seeded train-mode forward of each: same random draws, same batch statistics. The source
    model's state (running statistics) is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    saved = [(b, b.detach().clone()) for b in model.buffers()]  # running statistics change in train mode
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            want = model.train()(x)
            torch.manual_seed(0)
            got = net.train()(x)
    except Exception as exc:
        raise UsageError(f"cannot check the export in train mode: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
        for m, mode in modes:
            m.training = mode
    return _max_diff(want, got)


# --------------------------------------------------------------------------- writing


def _file_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, mode=_file_mode(path))  # mkstemp's 0600 would make the export private


def _header(src: _Source, class_name: str, weights_name: str | None, input_size: tuple[int, int, int] | None) -> str:
    import zenfx

    lines = [f"{class_name}: {src.label}, exported by zenfx {zenfx.__version__}. Needs only torch.", ""]
    if input_size:
        lines += [f"Input: a batch of shape (N, {', '.join(map(str, input_size))}).", ""]
    lines += ["    model = " + class_name + "()"]
    if weights_name:
        lines += [f'    model.load_state_dict(torch.load("{weights_name}", weights_only=True))  # the exported weights']
    lines += ["", "model.train() / model.eval() switch batch-norm, dropout and drop-path as in the source model.", ""]
    return "\n".join(lines)


def _validate_out(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix != ".py":
        raise UsageError(f"--out '{out}' must name a .py file")
    if path.exists() and path.is_dir():
        raise UsageError(f"--out '{out}' is a directory")
    if not path.parent.exists():
        raise UsageError(f"the folder of --out '{out}' does not exist")
    return path


def export_model(model: Any, out: str | Path | None = None, *, weights: bool | str | Path = False,
                 class_name: str | None = None, kwargs: dict[str, Any] | None = None,
                 input_size: tuple[int, int, int] | None = None, check: bool = True,
                 tolerance: float = 1e-5) -> ExportResult:
    """Export ``model`` (a spec, an ``nn.Module``, a genome or a genome file) as torch-only source.

    ``out``: the ``.py`` file to write (atomically); None writes nothing and returns the source.
    ``weights``: True writes ``<out stem>.pt`` beside it, a path writes there; the file is a
    ``state_dict`` that loads into the exported class with ``strict=True``.
    ``check``: build the exported class, load the weights and compare eval outputs on a seeded
    batch of two at ``input_size`` (the model's default when None); a mismatch raises.
    """
    out_path = _validate_out(out) if out is not None else None
    weights_path = _weights_path(weights, out_path)
    src = _load(model, kwargs)
    name = class_name or src.class_name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"class name '{name}' is not a Python identifier")
    size = tuple(input_size) if input_size else src.input_size
    if any(p.device.type == "meta" for p in src.module.parameters()):
        raise UsageError("the model has no weights (meta device): build it on the CPU to export it")
    train, evl, specs = trace_for_export(src.module)
    header = _header(src, name, weights_path.name if weights_path else None, size)  # type: ignore[arg-type]
    try:
        emitted = emit(src.module, train, evl, specs, class_name=name, header=header)
    except CannotWrite as exc:
        raise NotExportableError(f"cannot export {type(src.module).__name__}: {exc}") from None
    _check_source(emitted.source)
    sd = _state_dict(emitted)
    result = ExportResult(
        model=src.label, class_name=name, source=emitted.source, state_dict=sd, input_size=size,  # type: ignore[arg-type]
        layers=len(emitted.layers), loose_tensors=len(emitted.loose), branched=emitted.branched,
        snippets=emitted.snippets, notes=list(emitted.notes),
        source_params=sum(p.numel() for p in src.module.parameters()),
    )
    net = build_exported(emitted.source, name, sd)
    result.params = sum(p.numel() for p in net.parameters())
    if result.params != result.source_params:
        result.notes.append(f"{result.source_params - result.params:,} parameter(s) of the source model sit in "
                            "modules its forward never calls; the export leaves them out")
    if check:
        _verify(result, src.module, net, emitted.inputs, size, tolerance)
    if out_path is not None:
        _write(result, emitted.source, sd, out_path, weights_path)
    return result


def _weights_path(weights: bool | str | Path, out_path: Path | None) -> Path | None:
    """Where the state dict goes: beside the module (``weights=True``), a path, or nowhere."""
    if not weights:
        return None
    if weights is True:
        if out_path is None:
            raise UsageError("weights=True needs an output path for the module")
        return out_path.with_suffix(".pt")
    return Path(weights)  # type: ignore[arg-type]


def _verify(result: ExportResult, source: nn.Module, net: nn.Module, inputs: int, size: Any,
            tolerance: float) -> None:
    """The exported class against the source model on a seeded batch (or a note why not)."""
    if inputs != 1:
        result.notes.append(f"not checked: the forward takes {inputs} inputs (the check feeds one image batch)")
    elif size is not None:
        result.max_abs_diff = _compare(source, net, size, tolerance)  # type: ignore[arg-type]
        result.checked = True
    else:
        result.notes.append("not checked: the input size is unknown (give input_size)")


def _write(result: ExportResult, source: str, sd: dict[str, Any], out_path: Path, weights_path: Path | None) -> None:
    """The module (and the weights) written atomically; their paths recorded in ``result``."""
    if weights_path is not None:
        buf = io.BytesIO()
        torch.save(sd, buf)
        _atomic_write(weights_path, buf.getvalue())
        result.weights_path = str(weights_path)
    _atomic_write(out_path, source.encode())
    result.module_path = str(out_path)
