"""Devices and dtypes: the one place that parses ``device=`` / ``dtype=`` and finds where a module lives.

``score``, ``cost_report``, the latency timer and the predictor all take the same two options, so
they parse them here: the same spelling is accepted or refused everywhere, with the same message.
Messages speak the Python API (``dtype 'int3' is not one of ...``); the CLI shows the flag instead
(:class:`zenfx.errors.OptionError`).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import OptionError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
DTYPE_NAMES: dict[torch.dtype, str] = {torch.float32: "float32", torch.float16: "float16",
                                       torch.bfloat16: "bfloat16"}


def parse_device(device: str | torch.device | None, *, allow_meta: bool = False,
                 option: str = "device", here: bool = True) -> torch.device:
    """``cpu`` (also for None), ``cuda`` / ``cuda:N`` when present, ``meta`` when ``allow_meta``.

    ``here=False`` checks the spelling only: the device is on another machine (a Ray worker's
    GPU, which the driver running this need not have)."""
    if device is None:
        return torch.device("cpu")
    known = "cpu, cuda[:N] or meta" if allow_meta else "cpu or cuda[:N]"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(option, f"{option} '{device}' is not a device ({known})") from None
    if dev.type == "cuda":
        if not here:
            return dev
        if not torch.cuda.is_available():
            raise OptionError(option, f"{option} '{device}': CUDA is not available on this machine",
                              hint="use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(option, f"{option} '{device}': only {torch.cuda.device_count()} CUDA device(s)")
    elif not (dev.type == "cpu" or (allow_meta and dev.type == "meta")):
        raise OptionError(option, f"{option} '{device}' is not supported ({known})")
    return dev


def parse_dtype(dtype: str | torch.dtype | None, *, option: str = "dtype") -> torch.dtype:
    """float32 (also for None), float16 or bfloat16, by name (``fp16``, ``half``, ``torch.bfloat16``, ...)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        dt = dtype
    else:
        dt = DTYPES.get(str(dtype).strip().lower().replace("torch.", ""))  # type: ignore[assignment]
    if dt not in DTYPE_NAMES:
        raise OptionError(option, f"{option} '{dtype}' is not one of float32, float16, bfloat16")
    return dt


def require_runnable(device: torch.device, dtype: torch.dtype, *, option: str = "dtype") -> None:
    """Refuse float16 compute on the CPU: its kernels are incomplete, emulated and slower than
    float32, so a score overflows for the wrong reason and a latency misleads. bfloat16 is fine."""
    if dtype == torch.float16 and device.type != "cuda":
        raise OptionError(option, f"{option} float16 needs a CUDA device (CPU half kernels are incomplete and slow)",
                          hint="use bfloat16 or float32 on CPU")


def dtype_name(dtype: torch.dtype) -> str:
    """``float32`` for ``torch.float32`` (any dtype, for tables and file names)."""
    return DTYPE_NAMES.get(dtype) or str(dtype).replace("torch.", "")


def module_device(module: nn.Module) -> torch.device:
    """Where a module's tensors live: its first parameter's (or buffer's) device; CPU when it has none."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def is_meta(module: nn.Module) -> bool:
    """Built on the meta device (shapes only, no storage)."""
    return module_device(module).type == "meta"


__all__ = ["DTYPES", "DTYPE_NAMES", "dtype_name", "is_meta", "module_device", "parse_device", "parse_dtype",
           "require_runnable"]
