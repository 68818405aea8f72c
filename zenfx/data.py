"""Batch providers for data-dependent zero-shot proxies.

A provider is ``provider(seed) -> Iterator[(inputs, labels)]``: a fresh iterator of batches each
call, the same batches for the same seed. ``ProxyContext.batches`` holds one; ``None`` means
:func:`gaussian_batches` (N(0,1) inputs with uniformly random labels), which is what zenfx uses
when no data is given. Proxies draw what they need through :func:`draw`.

Sources:

* :func:`gaussian_batches` (default): no data at all.
* :func:`tensor_batches`: a user's tensors (``x`` N,C,H,W float; ``y`` N integer labels).
* :func:`npz_batches`: a ``.npz`` file with ``x``/``y`` (or ``images``/``labels``, ``data``/
  ``targets``); uint8 images (N,H,W,C or N,C,H,W) are scaled to [0,1] and normalised per channel.
* :func:`dataset_batches`: any ``torch.utils.data.Dataset`` of (image tensor, label) pairs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .errors import UsageError

Batch = tuple[torch.Tensor, torch.Tensor]
BatchProvider = Callable[[int], Iterator[Batch]]

DATA_RNG_OFFSET = 0xDA7A


def gaussian_batches(input_size: Sequence[int], batch_size: int, num_classes: int) -> BatchProvider:
    """Endless N(0,1) input batches of shape (B, *input_size) with labels uniform in [0, classes)."""
    size = (int(batch_size), *[int(d) for d in input_size])

    def provider(seed: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(int(seed))
        while True:
            x = torch.randn(size, generator=g)
            y = torch.randint(0, int(num_classes), (size[0],), generator=g)
            yield x, y

    provider.kind = "gaussian"  # type: ignore[attr-defined]
    return provider


def tensor_batches(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | None = None, *,
                   batch_size: int | None = None, shuffle: bool = True,
                   num_classes: int | None = None) -> BatchProvider:
    """Batches cut from a user's tensors, shuffled per seed, cycling when exhausted.

    ``batch_size=None`` uses the whole tensor as one batch. Missing labels are drawn at random
    (``num_classes`` needed then).
    """
    xt = _inputs(x)
    n = xt.shape[0]
    yt = _labels(y, n, num_classes)
    bs = int(batch_size or n)
    if bs < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    provider = _cycling(xt, yt, bs, shuffle, num_classes)
    provider.kind = "tensor"  # type: ignore[attr-defined]
    return provider


def _inputs(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The user's inputs as a float tensor with a batch dimension (N,C,H,W or N,features)."""
    xt = torch.as_tensor(x)
    if not xt.is_floating_point():
        xt = xt.float()
    if xt.ndim < 2:
        raise UsageError(f"input batch must be N,C,H,W (or N,features), got shape {tuple(xt.shape)}")
    return xt


def _labels(y: torch.Tensor | np.ndarray | None, n: int, num_classes: int | None) -> torch.Tensor | None:
    """The user's labels as N integers, or None when they are to be drawn at random (``num_classes`` needed)."""
    if y is None:
        if not num_classes:
            raise UsageError("labels missing: pass y or num_classes for random labels")
        return None
    yt = torch.as_tensor(y).long().reshape(-1)
    if yt.shape[0] != n:
        raise UsageError(f"{n} inputs but {yt.shape[0]} labels")
    return yt


def _cycling(xt: torch.Tensor, yt: torch.Tensor | None, bs: int, shuffle: bool,
             num_classes: int | None) -> BatchProvider:
    """Batches of ``bs`` in a per-seed order, epoch after epoch; fewer samples than a batch wrap around."""
    n = xt.shape[0]

    def provider(seed: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(int(seed))
        while True:
            order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
            for s in range(0, n - bs + 1 if n >= bs else 1, bs):
                idx = order[s:s + bs]
                if len(idx) < bs:  # fewer samples than a batch: wrap around
                    idx = order[torch.arange(bs) % n]
                labels = yt[idx] if yt is not None else torch.randint(0, int(num_classes), (bs,), generator=g)
                yield xt[idx], labels

    return provider


_NPZ_KEYS = (("x", "y"), ("images", "labels"), ("data", "targets"), ("inputs", "labels"), ("X", "Y"))
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def load_npz(path: str | os.PathLike[str], *, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not os.path.exists(path):
        raise UsageError(f"batch file {path} does not exist")
    try:
        data = np.load(path)
    except Exception as exc:
        raise UsageError(f"cannot read {path} as .npz ({exc})") from None
    keys = set(data.files)
    for kx, ky in _NPZ_KEYS:
        if kx in keys:
            x = np.asarray(data[kx])
            y = np.asarray(data[ky]) if ky in keys else None
            break
    else:
        raise UsageError(f"{path} holds {sorted(keys)}; expected arrays x and y (or images/labels)")
    if x.ndim != 4:
        raise UsageError(f"{path}: inputs must be 4-D images, got shape {x.shape}")
    if x.dtype == np.uint8:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        xt = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        c = xt.shape[1]
        m = torch.tensor(mean if mean is not None else (CIFAR_MEAN if c == 3 else [0.5] * c)).view(1, -1, 1, 1)
        s = torch.tensor(std if std is not None else (CIFAR_STD if c == 3 else [0.25] * c)).view(1, -1, 1, 1)
        xt = (xt - m) / s
    else:
        xt = torch.from_numpy(np.ascontiguousarray(x)).float()
    return xt, (torch.from_numpy(y.astype(np.int64)).reshape(-1) if y is not None else None)


def npz_batches(path: str | os.PathLike[str], *, batch_size: int | None = None, shuffle: bool = True,
                num_classes: int | None = None) -> BatchProvider:
    """Batches from a ``.npz`` file (see module docstring for the keys it understands)."""
    x, y = load_npz(path)
    p = tensor_batches(x, y, batch_size=batch_size, shuffle=shuffle, num_classes=num_classes)
    p.kind = "npz"  # type: ignore[attr-defined]
    return p


def dataset_batches(dataset: Any, batch_size: int, *, shuffle: bool = True) -> BatchProvider:
    """Batches from a torch ``Dataset`` of (image, label) pairs (images already tensors)."""
    from torch.utils.data import DataLoader

    def provider(seed: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(int(seed))
        while True:
            loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=shuffle, generator=g,
                                drop_last=len(dataset) >= int(batch_size))
            for xb, yb in loader:
                yield torch.as_tensor(xb).float(), torch.as_tensor(yb).long().reshape(-1)

    provider.kind = "dataset"  # type: ignore[attr-defined]
    return provider


def as_provider(data: Any, *, batch_size: int, num_classes: int | None = None) -> BatchProvider | None:
    """Turn what a user hands the API into a provider: None (Gaussian), a provider, a .npz path,
    an (x, y) pair, a tensor of inputs, or a Dataset."""
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        return npz_batches(data, batch_size=batch_size, num_classes=num_classes)
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        return tensor_batches(data[0], data[1], batch_size=batch_size, num_classes=num_classes)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return tensor_batches(data, None, batch_size=batch_size, num_classes=num_classes)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return dataset_batches(data, batch_size)
    if callable(data):
        return data
    raise UsageError(f"cannot make batches from {type(data).__name__}")


def draw(ctx: Any, n: int, offset: int = 0) -> list[Batch]:
    """``n`` batches for a proxy, on ``ctx.device`` (inputs in ``ctx.dtype``).

    From ``ctx.batches`` when set, else Gaussian inputs with random labels in
    ``[0, ctx.num_classes)``; seeded from ``ctx.derived_seed(DATA_RNG_OFFSET + offset)``.
    """
    provider = ctx.batches or gaussian_batches(ctx.input_size, ctx.batch_size, ctx.num_classes)
    it = provider(ctx.derived_seed(DATA_RNG_OFFSET + offset))
    out = []
    for _ in range(int(n)):
        try:
            x, y = next(it)
        except StopIteration:
            raise UsageError("the batch provider ran out of batches") from None
        out.append((x.to(device=ctx.device, dtype=ctx.dtype), y.to(device=ctx.device).long()))
    return out


__all__ = ["Batch", "BatchProvider", "as_provider", "dataset_batches", "draw", "gaussian_batches",
           "load_npz", "npz_batches", "tensor_batches"]
