"""Resolve what a user types into an ``nn.Module`` and the input size it expects.

One resolver serves the API and every CLI command, so ``zenfx score X`` and ``zenfx report X``
always mean the same network. Pretrained weights are never requested: zenfx runs without network
access, and zero-shot proxies re-initialise weights anyway.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .errors import UnknownModelError, UsageError, ZenfxError

DEFAULT_INPUT_SIZE: tuple[int, int, int] = (3, 224, 224)

InputSize = tuple[int, int, int]


@dataclass
class LoadedModel:
    """A built model plus what we learnt about it while resolving the spec."""

    module: nn.Module
    name: str
    source: str  # "torchvision", "timm", "python", "file" or "module"
    spec: str
    default_input_size: InputSize = DEFAULT_INPUT_SIZE
    kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


# --------------------------------------------------------------------------- registries


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    """Classification models only: the family zenfx scores and audits."""
    import torchvision.models as tvm

    return tuple(sorted(tvm.list_models(module=tvm)))


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    import timm

    return tuple(sorted(timm.list_models()))


def _suggest(name: str, candidates: list[str], n: int = 5) -> list[str]:
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)


def _unknown(name: str, where: str, candidates: list[str]) -> UnknownModelError:
    close = _suggest(name, candidates)
    hint = f"did you mean {', '.join(close)}?" if close else None
    return UnknownModelError(f"unknown model '{name}' in {where}", hint=hint)


# --------------------------------------------------------------------------- kwargs


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """Parse repeatable ``key=value`` strings; every value must be a Python literal.

    One rule, no guessing: ``48``, ``0.5``, ``True``, ``None``, ``(1, 2)``, ``[1, 2]``, ``{'a': 1}``
    and quoted strings (``'"relu"'`` in a shell) are accepted; anything else (``width=abc``,
    ``width=[1,2``) is refused with the quoting to use, because a silent fallback to a string turns
    a typo into a confusing failure deep inside the constructor.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"constructor argument '{item}' is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise UsageError(f"constructor argument name '{key}' is not a Python identifier")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            quoted = "'\"" + raw + "\"'" if '"' not in raw else "\"'" + raw + "'\""
            raise UsageError(
                f"-k {key}={raw}: {raw!r} is not a Python literal (a number, True/False/None, a tuple, list "
                f"or dict, or a quoted string); for the string {raw!r} write -k {key}={quoted}"
            ) from None
    return out


def parse_input_size(input_size: str | None = None, resolution: int | None = None,
                     default: InputSize = DEFAULT_INPUT_SIZE) -> InputSize:
    """``--input-size C,H,W`` wins over ``--resolution R``; otherwise the model's default."""
    if input_size:
        parts = [p for p in input_size.replace("x", ",").split(",") if p.strip()]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise UsageError(f"--input-size '{input_size}' must be C,H,W integers") from None
        if len(dims) != 3 or min(dims) <= 0:
            raise UsageError(f"--input-size '{input_size}' must be three positive integers C,H,W")
        return dims  # type: ignore[return-value]
    if resolution is not None:
        if resolution <= 0:
            raise UsageError(f"--resolution must be positive, got {resolution}")
        return (default[0], resolution, resolution)
    return default


def _refuse_pretrained(kwargs: dict[str, Any]) -> None:
    for key in ("pretrained", "weights", "weights_backbone", "pretrained_backbone"):
        if key in kwargs and kwargs[key] not in (None, False, "None", ""):
            raise UsageError(
                f"zenfx never downloads weights (got {key}={kwargs[key]!r}); "
                "drop that argument: zero-shot proxies re-initialise weights anyway"
            )


# --------------------------------------------------------------------------- build helpers


@contextlib.contextmanager
def _on_device(device: str | torch.device | None) -> Iterator[None]:
    if device is None:
        yield
    else:
        with torch.device(device):
            yield


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Parameters and buffers move to the meta device as they are registered.

    The fallback for meta builds that ``with torch.device("meta")`` breaks: RegNet, for one,
    computes its stage widths with torch ops (``.tolist()``) at construction time, which fail on
    meta tensors. Here those ops run on the CPU while every weight still ends on meta, so the
    layers' own initialisers run on meta tensors and cost nothing.
    """
    reg_p, reg_b = nn.Module.register_parameter, nn.Module.register_buffer

    def register_parameter(self: nn.Module, name: str, param: Any) -> None:
        reg_p(self, name, param)
        if param is not None:
            self._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def register_buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        reg_b(self, name, tensor.to("meta") if isinstance(tensor, torch.Tensor) else tensor, persistent)

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = reg_p  # type: ignore[method-assign]
        nn.Module.register_buffer = reg_b  # type: ignore[method-assign]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def build_module(ctor: Any, kwargs: dict[str, Any], device: str | None, *, what: str | None = None) -> nn.Module:
    """Call a constructor on ``device`` (meta for a memory-free build), falling back to CPU.

    Whatever the constructor raises (a TypeError for a wrong argument, a ValueError or RuntimeError
    for a bad value such as a negative width) is the user's usage error: one line naming ``what``
    (the spec) and the exception, exit 2, never a traceback. ZenfxErrors pass through unchanged.
    """
    if isinstance(ctor, nn.Module):
        if kwargs:
            raise UsageError("constructor arguments were given, but the spec names a module instance")
        return ctor
    if not callable(ctor):
        raise UsageError(f"'{ctor!r}' is neither an nn.Module, a class nor a callable")
    try:
        model = _call_with_fallback(ctor, kwargs, device)
    except ZenfxError:
        raise
    except Exception as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("weights", "pretrained"))
        given = f" with {args}" if args else ""
        raise UsageError(f"cannot build {what or 'model'}{given}: {_first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"the constructor returned {type(model).__name__}, not an nn.Module")
    return model


def _call_with_fallback(ctor: Any, kwargs: dict[str, Any], device: str | None) -> Any:
    """Build on ``device``; a build that fails there is retried without weights on meta (for meta)
    and then on the CPU, whose exception (the user's own, not a meta artefact) is the one raised."""
    try:
        with _on_device(device):
            return ctor(**kwargs)
    except Exception:
        if device in (None, "cpu"):
            raise
    if str(device) == "meta":
        try:
            with empty_weights():
                return ctor(**kwargs)
        except Exception:
            pass
    with _on_device("cpu"):
        return ctor(**kwargs)


def _torchvision_input_size(name: str, model: nn.Module | None = None) -> InputSize:
    """The evaluation crop of the model's default weights, unless the built model fixes its own
    size: torchvision's ViTs are built for ``image_size`` (224 by default) while their DEFAULT
    weights may be a larger fine-tune (vit_h_14: 518), and a ViT only runs at its built size."""
    import torchvision.models as tvm

    built = getattr(model, "image_size", None)
    if isinstance(built, int) and built > 0:
        return (3, built, built)
    try:
        weights = tvm.get_model_weights(name)
        default = weights.DEFAULT  # type: ignore[attr-defined]
        crop = default.transforms().crop_size
        side = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
        return (3, side, side)
    except Exception:
        return DEFAULT_INPUT_SIZE


def _timm_input_size(model: nn.Module) -> InputSize:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if size and len(size) == 3:
        return tuple(int(s) for s in size)  # type: ignore[return-value]
    return DEFAULT_INPUT_SIZE


def _load_torchvision(name: str, kwargs: dict[str, Any], device: str | None, spec: str) -> LoadedModel:
    import torchvision.models as tvm

    if name not in torchvision_names():
        raise _unknown(name, "torchvision", list(torchvision_names()))
    kw = dict(kwargs)
    kw.setdefault("weights", None)
    model = build_module(lambda **k: tvm.get_model(name, **k), kw, device, what=spec)
    return LoadedModel(model, name, "torchvision", spec, _torchvision_input_size(name, model), kwargs)


def _load_timm(name: str, kwargs: dict[str, Any], device: str | None, spec: str) -> LoadedModel:
    import timm

    if not timm.is_model(name):
        raise _unknown(name, "timm", list(timm_names()))
    kw = dict(kwargs)
    kw["pretrained"] = False
    model = build_module(lambda **k: timm.create_model(name, **k), kw, device, what=spec)
    return LoadedModel(model, name, "timm", spec, _timm_input_size(model), kwargs)


# --------------------------------------------------------------------------- a user's file


@dataclass(frozen=True)
class FileRef:
    """Which seed file a stored model means: its content hash, and where it may lie on this machine.

    A genome written next week, in another folder or on another machine names its seed file by
    content (``sha256``) as well as by path; ``candidates`` are the places to look, in order (the
    path relative to the genome file, the absolute path it was written with, the spec's own path).
    """

    sha256: str
    candidates: tuple[str, ...] = ()


class SeedFileChangedError(UsageError):
    """The seed file is there, but its content is not the one a stored model was made from."""


@dataclass(frozen=True)
class UserSource:
    """A user's seed file as text: what a worker on another machine executes instead of the file."""

    name: str  # the file's base name, for messages
    text: str


_SOURCES: dict[str, UserSource] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of the file's bytes: the file's identity, whatever its path, process or machine."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def user_module_name(sha256: str) -> str:
    """The module name a user's file is imported under: named by its content, never by a salted
    ``hash()`` or its path, so its classes' ``__module__`` (part of every structure key) is the same
    in every process, folder and machine, and an identical file moved elsewhere is the same model."""
    return f"zenfx_user_{sha256[:20]}"


def register_source(sha256: str, name: str, text: str) -> None:
    """Make a file's source loadable by hash in this process (a worker gets the driver's this way)."""
    _SOURCES[sha256] = UserSource(name, text)


def registered_source(sha256: str) -> UserSource | None:
    """The source of a user file loaded (or registered) in this process, by content hash."""
    return _SOURCES.get(sha256)


def split_file_spec(spec: str) -> tuple[str, str] | None:
    """``(path, attr)`` for a ``path/file.py:attr`` spec, else None."""
    if not isinstance(spec, str) or not _looks_like_file(spec) or ":" not in spec:
        return None
    path, attr = spec.strip().rsplit(":", 1)
    return path, attr


def file_ref_of(spec: str) -> FileRef | None:
    """The content identity of a file spec's file as it is now (None: not a file spec, or no file)."""
    parts = split_file_spec(spec)
    if parts is None or not os.path.isfile(parts[0]):
        return None
    return FileRef(file_digest(parts[0]), (os.path.abspath(parts[0]),))


def _locate(path: str, ref: FileRef) -> str | None:
    """The first candidate whose content is ``ref``'s; a file that exists with other content is an
    edited seed (one line, exit 2) unless the source is already known in this process."""
    seen: list[str] = []
    for cand in dict.fromkeys([*ref.candidates, path]):
        if cand and os.path.isfile(cand):
            if file_digest(cand) == ref.sha256:
                return cand
            seen.append(cand)
    if user_module_name(ref.sha256) in sys.modules or ref.sha256 in _SOURCES:
        return None  # loaded here before (or shipped by the driver): no file needed
    if seen:
        raise SeedFileChangedError(
            f"the seed file '{seen[0]}' changed since the genome was written (its sha256 is not the recorded "
            f"{ref.sha256[:12]}...)", hint="restore the file, or re-create the genome from the file as it is now")
    looked = ", ".join(f"'{c}'" for c in dict.fromkeys([*ref.candidates, path]) if c)
    raise UnknownModelError(f"seed file '{os.path.basename(path)}' not found (looked at {looked})",
                            hint="keep the seed file beside the genome or at its recorded path")


def _exec_user_module(mod_name: str, filename: str, text: str, where: str) -> Any:
    """Import ``text`` as module ``mod_name``; the file's own folder is importable meanwhile, so a
    sibling module (``from blocks import Block``) works as it does when the file runs as a script."""
    import linecache
    import types

    module = types.ModuleType(mod_name)
    module.__file__ = filename
    # Tracebacks, inspect and the tracer's "at file.py:LINE" read lines through linecache: a shipped
    # source has no file on this machine, so its text goes there.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    folder = os.path.dirname(os.path.abspath(filename))
    sys.modules[mod_name] = module
    added = os.path.isdir(folder) and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        exec(compile(text, filename, "exec"), module.__dict__)  # noqa: S102 - the user's own model file
    except Exception as exc:
        del sys.modules[mod_name]
        if isinstance(exc, ModuleNotFoundError) and exc.name and not os.path.isfile(filename):
            raise UsageError(f"importing '{where}' failed: it imports '{exc.name}', which this process cannot "
                             "find (only the seed file itself is shipped to workers)",
                             hint="keep the model in one file, or install that module where the workers run"
                             ) from None
        raise UsageError(f"importing '{where}' failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    return module


def user_source(path: str, ref: FileRef) -> UserSource:
    """The source text of the seed file ``ref`` names (found as building would find it), for shipping
    to workers that may not see the file."""
    if ref.sha256 not in _SOURCES:
        found = _locate(path, ref)
        if found is None:
            raise UnknownModelError(f"seed file '{os.path.basename(path)}' is not on this machine")
        with open(found, encoding="utf-8") as fh:
            register_source(ref.sha256, os.path.basename(found), fh.read())
    return _SOURCES[ref.sha256]


def _user_module(path: str, ref: FileRef | None) -> Any:
    """The module of a user's file, imported once per content in a process."""
    if ref is not None:
        found = _locate(path, ref)
        sha = ref.sha256
    else:
        if not os.path.isfile(path):
            raise UnknownModelError(f"file '{path}' does not exist")
        found, sha = path, file_digest(path)
    mod_name = user_module_name(sha)
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    if found is not None:
        try:
            with open(found, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UnknownModelError(f"cannot import '{path}' as Python: {exc}") from None
        register_source(sha, os.path.basename(found), text)
        return _exec_user_module(mod_name, os.path.abspath(found), text, path)
    shipped = _SOURCES[sha]
    return _exec_user_module(mod_name, os.path.join(os.path.dirname(os.path.abspath(path)), shipped.name),
                             shipped.text, path)


def _load_file(path: str, attr: str, kwargs: dict[str, Any], device: str | None, spec: str,
               ref: FileRef | None = None) -> LoadedModel:
    module = _user_module(path, ref)
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise _unknown(attr, path, public)
    ctor = getattr(module, attr)
    model = build_module(ctor, kwargs, device, what=spec)
    name = f"{os.path.basename(path)}:{attr}"
    return LoadedModel(model, name, "file", spec, guess_input_size(model, attr), kwargs)


def _import_attr(module_path: str, attr_path: str) -> Any:
    try:
        obj: Any = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise UnknownModelError(f"cannot import module '{module_path}': {exc}") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise _unknown(part, module_path, public)
        obj = getattr(obj, part)
    return obj


def _load_python(spec: str, kwargs: dict[str, Any], device: str | None) -> LoadedModel:
    """``pkg.mod:attr`` or ``pkg.mod.attr``: the longest importable prefix is the module."""
    if ":" in spec:
        module_path, attr_path = spec.split(":", 1)
        obj = _import_attr(module_path, attr_path)
    else:
        parts = spec.split(".")
        obj = None
        for cut in range(len(parts) - 1, 0, -1):
            module_path = ".".join(parts[:cut])
            try:
                importlib.import_module(module_path)
            except ModuleNotFoundError:
                continue
            obj = _import_attr(module_path, ".".join(parts[cut:]))
            break
        if obj is None:
            raise UnknownModelError(f"cannot import any module prefix of '{spec}'")
        attr_path = parts[-1]
    name = attr_path.split(".")[-1]
    module_name = getattr(obj, "__module__", "") or ""
    kw = dict(kwargs)
    torchvision_ctor = module_name.startswith("torchvision.models") and inspect.isfunction(obj)
    if torchvision_ctor:
        kw.setdefault("weights", None)
    elif module_name.startswith("timm.models") and inspect.isfunction(obj):
        kw["pretrained"] = False
    model = build_module(obj, kw, device, what=spec)
    if torchvision_ctor:
        default = _torchvision_input_size(name, model) if name in torchvision_names() else DEFAULT_INPUT_SIZE
    else:
        default = guess_input_size(model, name)
    source = "module" if isinstance(obj, nn.Module) else (
        "torchvision" if module_name.startswith("torchvision.") else
        "timm" if module_name.startswith("timm.") else "python")
    return LoadedModel(model, name, source, spec, default, kwargs)


def guess_input_size(model: nn.Module, name: str) -> InputSize:
    if getattr(model, "pretrained_cfg", None):
        return _timm_input_size(model)
    return DEFAULT_INPUT_SIZE


def _looks_like_file(spec: str) -> bool:
    head = spec.rsplit(":", 1)[0]
    return head.endswith(".py") or os.sep in head


class PickOutput(nn.Module):
    """``model`` reduced to one of its outputs: ``forward(x)`` is ``model(x)[key]``.

    zenfx scores one feature map; a backbone that returns a dict or list of feature maps (a
    detection/segmentation trunk) is wrapped with this in a file spec's ``build()``. fx traces
    through it, so the graph is the model's own with the other outputs dropped.
    """

    def __init__(self, model: nn.Module, key: Any) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)[self.key]


def pick_output(model: nn.Module, key: Any) -> nn.Module:
    """``model`` with only output ``key`` (a dict key or a list index): see :class:`PickOutput`."""
    return PickOutput(model, key)


# --------------------------------------------------------------------------- public API


def _load_genome(spec: str, kwargs: dict[str, Any], device: str | None) -> LoadedModel:
    """A genome JSON file: its seed model with its edits replayed (``zenfx.build``)."""
    from .genome import Genome
    from .mutation import build

    if kwargs:
        raise UsageError(f"constructor arguments were given with the genome '{spec}': a genome carries its own")
    genome = Genome.load(spec)
    model = build(genome, device=device)
    return LoadedModel(model, os.path.basename(spec), "genome", spec, genome.input_size, {})


def resolve_model(spec: str | nn.Module, kwargs: dict[str, Any] | None = None,
                  device: str | None = None, *, file: FileRef | None = None) -> LoadedModel:
    """Build the model a spec names; ``device="meta"`` builds it without allocating weights.

    Accepted specs: ``torchvision:NAME``, ``timm:NAME``, a bare registry NAME (torchvision first,
    then timm; a name in both is ambiguous), ``pkg.mod.attr`` / ``pkg.mod:attr`` naming a
    constructor, class or instance, ``path/file.py:callable``, or an ``nn.Module`` (API only).
    ``file`` pins a file spec to a content hash (a genome's seed): see :class:`FileRef`.
    """
    kwargs = dict(kwargs or {})
    _refuse_pretrained(kwargs)
    if isinstance(spec, nn.Module):
        if kwargs:
            raise UsageError("constructor arguments were given with an nn.Module instance")
        return LoadedModel(spec, type(spec).__name__, "module", type(spec).__name__,
                           guess_input_size(spec, type(spec).__name__), {})
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelError("empty model spec")
    spec = spec.strip()
    if spec.lower().endswith(".json"):  # a genome (zenfx/genome.py): its seed plus replayed edits
        return _load_genome(spec, kwargs, device)
    if spec.startswith("zoo:"):  # the zoo's registry (zoo/registry.py): seeds, ZenNets, found nets
        from .zoo.registry import load_entry

        return load_entry(spec[4:], kwargs, device, spec)
    if spec.startswith("timm:"):
        return _load_timm(spec[5:], kwargs, device, spec)
    if spec.startswith("torchvision:"):
        return _load_torchvision(spec[12:], kwargs, device, spec)
    if _looks_like_file(spec):
        if ":" not in spec:
            raise UsageError(f"'{spec}' names a file: add ':callable' (e.g. {spec}:build)")
        path, attr = spec.rsplit(":", 1)
        return _load_file(path, attr, kwargs, device, spec, file)
    if "." in spec or ":" in spec:
        return _load_python(spec, kwargs, device)
    in_tv = spec in torchvision_names()
    in_timm = spec in timm_names()
    if in_tv and in_timm:
        raise UnknownModelError(
            f"'{spec}' is both a torchvision and a timm model",
            hint=f"say torchvision:{spec} or timm:{spec}",
        )
    if in_tv:
        return _load_torchvision(spec, kwargs, device, spec)
    if in_timm:
        return _load_timm(spec, kwargs, device, spec)
    raise _unknown(spec, "torchvision or timm", list(torchvision_names()) + list(timm_names()))


def load_model(spec: str | nn.Module, **kwargs: Any) -> nn.Module:
    """The model a spec names, built on the CPU with constructor ``kwargs`` and no weights download."""
    return resolve_model(spec, kwargs).module
