"""Measured latency with ``torch.utils.benchmark``: median and interquartile range, per batch and per image.

Rules the numbers follow, so two runs (or two machines) can be compared:

* the model runs in eval mode under ``torch.inference_mode()`` on a private copy moved to the
  device and dtype asked for; the input is a fixed-seed Gaussian batch;
* ``warmup`` untimed forward passes first (allocator, cuDNN autotuning, lazy init);
* the thread count is pinned (``torch.set_num_threads`` plus the Timer's ``num_threads``) and
  reported; by default it is ``torch.get_num_threads()``;
* ``Timer.blocked_autorange`` picks a block size so that timer overhead is negligible and runs
  blocks for at least ``min_run_time`` seconds; median and IQR are over the blocks;
* on CUDA the timer synchronises the device before reading the clock (torch.utils.benchmark's
  accelerator-synchronising timer), so asynchronous kernel launches are not mistaken for speed;
* ``clock="wall"`` (default) times wall-clock latency. ``clock="thread"`` times the calling
  thread's CPU time instead (``time.thread_time``): on a shared CPU it leaves out the time the
  process sat descheduled while other jobs ran, which is most of the noise there. It is only
  valid on CPU with one thread (with more, intra-op work runs on other threads) and it is not
  latency in the user's sense: benchmarks use it to compare predicted and measured cost;
* fp16/bf16 on GPU; fp16 on CPU is refused (it is emulated and slower than fp32, so its number
  misleads), bf16 on CPU is allowed.
"""

from __future__ import annotations

import contextlib
import copy
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import dtype_name, is_meta, parse_device, parse_dtype, require_runnable
from ..errors import OptionError, UsageError


def resolve_runnable(device: str | torch.device, dtype: str | torch.dtype) -> tuple[torch.device, torch.dtype]:
    """Device and dtype a forward pass is timed on (``zenfx.devices`` parses both; float16 on CPU is refused)."""
    dev, dt = parse_device(device), parse_dtype(dtype)
    require_runnable(dev, dt)
    return dev, dt


def device_name(device: torch.device) -> str:
    """A human- and file-name-friendly name of the hardware: GPU model or CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not name:
        import platform

        name = platform.processor() or platform.machine() or "cpu"
    return name


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    n = before if threads is None else int(threads)
    if n < 1:
        raise OptionError("threads", f"threads must be at least 1, got {threads}")
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


CLOCKS = ("wall", "thread")


def check_clock(clock: str, device: torch.device, threads: int) -> None:
    if clock not in CLOCKS:
        raise OptionError("clock", f"clock '{clock}' is not one of wall, thread")
    if clock == "thread" and (device.type != "cpu" or threads != 1):
        raise OptionError("clock", "clock 'thread' (thread CPU time) needs device cpu and threads 1")


def make_timer(device: torch.device, clock: str = "wall") -> Callable[[], float]:
    if clock == "thread":
        return time.thread_time
    if device.type == "cuda":
        def sync_timer() -> float:
            torch.cuda.synchronize(device)
            return timeit.default_timer()

        return sync_timer
    return timeit.default_timer


def prepare_module(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A private eval-mode copy on ``device``/``dtype``; refuses meta models (nothing to run)."""
    if is_meta(module):
        raise UsageError("latency needs a model with real weights; this one was built on the meta device")
    clone = copy.deepcopy(module)
    clone.to(device=device, dtype=dtype)
    clone.eval()
    return clone


def make_input(shape: Sequence[int], device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn(tuple(shape), generator=g).to(device=device, dtype=dtype)


@dataclass
class LatencyResult:
    median_s: float
    iqr_s: float
    batch_size: int
    threads: int
    device: str
    device_name: str
    dtype: str
    warmup: int
    blocks: int
    runs_per_block: int
    min_run_time: float
    clock: str = "wall"

    @property
    def per_image_median_s(self) -> float:
        return self.median_s / self.batch_size

    @property
    def per_image_iqr_s(self) -> float:
        return self.iqr_s / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_s * 1e3,
            "iqr_ms": self.iqr_s * 1e3,
            "per_image_median_ms": self.per_image_median_s * 1e3,
            "per_image_iqr_ms": self.per_image_iqr_s * 1e3,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "warmup": self.warmup,
            "blocks": self.blocks,
            "runs_per_block": self.runs_per_block,
            "min_run_time_s": self.min_run_time,
            "clock": self.clock,
        }


def time_callable(fn: Callable[[], Any], device: torch.device, threads: int,
                  min_run_time: float, warmup: int = 3, clock: str = "wall") -> tuple[float, float, int, int]:
    """(median, iqr, blocks, runs per block) of ``fn()`` with torch.utils.benchmark."""
    from torch.utils.benchmark import Timer

    for _ in range(max(0, warmup)):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=make_timer(device, clock))
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return float(m.median), float(m.iqr), len(m.times), int(m.number_per_run)


def measure_latency(module: nn.Module, input_size: Sequence[int], batch_size: int = 1,
                    device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
                    threads: int | None = None, warmup: int = 10, min_run_time: float = 1.0,
                    seed: int = 0, clock: str = "wall") -> LatencyResult:
    """Median/IQR forward latency of ``module`` on a ``(batch_size, *input_size)`` input."""
    dev, dt = resolve_runnable(device, dtype)
    if batch_size < 1:
        raise OptionError("batch_size", f"batch_size must be at least 1, got {batch_size}")
    model = prepare_module(module, dev, dt)
    x = make_input((batch_size, *input_size), dev, dt, seed)
    with pinned_threads(threads) as n, torch.inference_mode():
        check_clock(clock, dev, n)

        def fn() -> Any:
            return model(x)

        median, iqr, blocks, per = time_callable(fn, dev, n, min_run_time, warmup, clock)
    return LatencyResult(median, iqr, batch_size, n, dev.type, device_name(dev), dtype_name(dt),
                         warmup, blocks, per, min_run_time, clock)
