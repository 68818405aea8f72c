"""``audit_models``: VCNN conversion over whole zoos, one row per model, robust to crashes and hangs.

Models are built on the meta device (no memory, no compute), traced and converted. Each model runs
in a worker process with a per-model timeout: a model that crashes, hangs or kills its worker is a
row with its error, never the end of the audit. Rows are appended to the CSV as they finish, so an
interrupted audit resumes where it stopped (``resume=True`` skips rows already in the CSV).
"""

from __future__ import annotations

import csv
import fnmatch
import multiprocessing as mp
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Optional, Sequence

from .report import KINDS, NOT_CONVERTIBLE, VERDICTS, reason_category

ERROR = "error"
SOURCES = ("torchvision", "timm")
CSV_FIELDS = (["source", "name", "traceable", "tracer", "verdict", "reasons"] + [f"n_{k}" for k in KINDS]
              + ["bn_count", "conv_count", "params", "seconds", "error"])


@dataclass
class AuditTask:
    source: str
    name: str

    @property
    def spec(self) -> str:
        return f"{self.source}:{self.name}" if self.source in SOURCES else self.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.name)


@dataclass
class AuditSummary:
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    skipped: int = 0  # rows already in the CSV (resume)

    @property
    def by_verdict(self) -> dict[str, int]:
        c = Counter(r["verdict"] for r in self.rows)
        return {v: c.get(v, 0) for v in (*VERDICTS, ERROR)}

    def top_reasons(self, n: int = 10) -> list[tuple[str, int]]:
        """Blocking reason categories, counted once per model, most common first."""
        c: Counter[str] = Counter()
        for r in self.rows:
            if r["verdict"] in (NOT_CONVERTIBLE, ERROR):
                cats = {reason_category(x) for x in str(r.get("reasons") or "").split(" | ") if x}
                if r["verdict"] == ERROR:
                    cats = {"error: " + str(r.get("error") or "").split(":", 1)[0]}
                c.update(cats)
        return c.most_common(n)

    @property
    def models_per_second(self) -> float:
        return len(self.rows) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self, include_rows: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "models": len(self.rows),
            "skipped": self.skipped,
            "by_verdict": self.by_verdict,
            "top_reasons": [{"reason": r, "models": k} for r, k in self.top_reasons()],
            "wall_seconds": round(self.wall_seconds, 2),
            "models_per_second": round(self.models_per_second, 3),
        }
        if include_rows:
            d["rows"] = self.rows
        return d


# --------------------------------------------------------------------------- what to audit


def expand_targets(targets: Sequence[str], filter_glob: Optional[str] = None, limit: Optional[int] = None) -> list[AuditTask]:
    """'torchvision' / 'timm' expand to their classification registries; anything else is a model spec."""
    from ..loading import timm_names, torchvision_names

    tasks: list[AuditTask] = []
    for t in targets or SOURCES:
        if t == "torchvision":
            tasks += [AuditTask("torchvision", n) for n in torchvision_names()]
        elif t == "timm":
            tasks += [AuditTask("timm", n) for n in timm_names()]
        elif t.startswith("torchvision:") or t.startswith("timm:"):
            src, name = t.split(":", 1)
            tasks.append(AuditTask(src, name))
        else:
            tasks.append(AuditTask("spec", t))
    if filter_glob:
        tasks = [t for t in tasks if fnmatch.fnmatch(t.name, filter_glob) or fnmatch.fnmatch(t.spec, filter_glob)]
    seen: set[tuple[str, str]] = set()
    unique = []
    for t in tasks:
        if t.key not in seen:
            seen.add(t.key)
            unique.append(t)
    return unique[:limit] if limit else unique


# --------------------------------------------------------------------------- one model


def _blank_row(task: AuditTask) -> dict[str, Any]:
    row: dict[str, Any] = {f: "" for f in CSV_FIELDS}
    row.update(source=task.source, name=task.name, traceable="", tracer="", verdict=ERROR, reasons="",
               bn_count=0, conv_count=0, params=0, seconds=0.0, error="")
    for k in KINDS:
        row[f"n_{k}"] = 0
    return row


def audit_one(task: AuditTask, device: str = "meta", input_size: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Load, trace and convert one model; every failure becomes a field of the row."""
    import warnings

    from ..errors import NotTraceableError
    from ..pipeline import load_and_trace
    from .convert import to_vcnn

    row = _blank_row(task)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                tm = load_and_trace(task.spec, None, input_size, device=device)
            except NotTraceableError as exc:
                row.update(traceable=False, verdict=NOT_CONVERTIBLE, reasons=f"untraceable: {exc}")
                return row
            row.update(traceable=True, tracer=tm.tracer, params=sum(p.numel() for p in tm.loaded.module.parameters()))
            if task.source == "spec":
                row["source"] = tm.loaded.source  # the name column keeps the spec as given
            res = to_vcnn(tm, strict=False, name=tm.name)
        row.update(verdict=res.verdict, reasons=" | ".join(res.reasons + ([] if res.reasons else res.approximations)),
                   bn_count=res.bn_count, conv_count=res.conv_count)
        for k, v in res.counts.items():
            if f"n_{k}" in row:
                row[f"n_{k}"] = v
    except Exception as exc:  # one model's crash is its row, never the end of the audit
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row.update(verdict=ERROR, error=f"{type(exc).__name__}: {msg}"[:500])
        if os.environ.get("ZENFX_AUDIT_DEBUG"):
            traceback.print_exc()
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


# --------------------------------------------------------------------------- CSV


def read_done(csv_path: str) -> set[tuple[str, str]]:
    if not csv_path or not os.path.exists(csv_path):
        return set()
    with open(csv_path, newline="") as fh:
        return {(r.get("source", ""), r.get("name", "")) for r in csv.DictReader(fh)}


class CsvSink:
    """Appends rows as they finish; writes the header only into a new or empty file."""

    def __init__(self, path: str) -> None:
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            self.writer.writeheader()
            self.fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# --------------------------------------------------------------------------- worker pool


# Address-space cap per worker: a model that falls back to a real CPU build and is too big fails with
# MemoryError in its own row instead of waking the kernel's OOM killer on a shared machine.
WORKER_ADDRESS_SPACE_GB = float(os.environ.get("ZENFX_AUDIT_MAX_GB", "12"))


def _limit_memory() -> None:
    try:
        import resource

        cap = int(WORKER_ADDRESS_SPACE_GB * 2**30)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except Exception:  # pragma: no cover - not on this platform
        pass


def _worker(conn: Connection, device: str, input_size: Optional[Sequence[int]]) -> None:
    import torch

    torch.set_num_threads(1)
    if WORKER_ADDRESS_SPACE_GB > 0:
        _limit_memory()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(audit_one(task, device, input_size))


class _Slot:
    def __init__(self, ctx: Any, device: str, input_size: Optional[Sequence[int]]) -> None:
        self.ctx, self.device, self.input_size = ctx, device, input_size
        self.task: Optional[AuditTask] = None
        self.started = 0.0
        self._spawn()

    def _spawn(self) -> None:
        parent, child = self.ctx.Pipe()
        self.conn: Connection = parent
        self.proc = self.ctx.Process(target=_worker, args=(child, self.device, self.input_size), daemon=True)
        self.proc.start()
        child.close()

    def submit(self, task: AuditTask) -> None:
        self.task, self.started = task, time.perf_counter()
        self.conn.send(task)

    def restart(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except Exception:  # pragma: no cover
            pass
        self.conn.close()
        self._spawn()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except Exception:
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)


def _run_pool(tasks: list[AuditTask], jobs: int, timeout: Optional[float], device: str,
              input_size: Optional[Sequence[int]], on_row: Callable[[dict[str, Any]], None]) -> None:
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    slots = [_Slot(ctx, device, input_size) for _ in range(max(1, min(jobs, len(tasks))))]
    pending = list(reversed(tasks))
    try:
        while pending or any(s.task is not None for s in slots):
            for s in slots:
                if s.task is None and pending:
                    s.submit(pending.pop())
            busy = [s for s in slots if s.task is not None]
            now = time.perf_counter()
            wait_for = None
            if timeout:
                wait_for = max(0.0, min(s.started + timeout - now for s in busy))
            ready = wait([s.conn for s in busy], timeout=wait_for)
            for s in busy:
                task = s.task
                assert task is not None
                if s.conn in ready:
                    try:
                        row = s.conn.recv()
                    except (EOFError, OSError):
                        row = _blank_row(task)
                        s.proc.join(1)
                        row["error"] = f"worker crashed (exit code {s.proc.exitcode})"
                        row["seconds"] = round(time.perf_counter() - s.started, 3)
                        s.restart()
                    s.task = None
                    on_row(row)
                elif timeout and time.perf_counter() - s.started > timeout:
                    row = _blank_row(task)
                    row["error"] = f"timeout: no result after {timeout:g} s"
                    row["seconds"] = round(time.perf_counter() - s.started, 3)
                    s.restart()
                    s.task = None
                    on_row(row)
    finally:
        for s in slots:
            s.stop()


def audit_models(targets: Sequence[str] = SOURCES, *, filter_glob: Optional[str] = None, limit: Optional[int] = None,
                 jobs: int = 1, timeout: Optional[float] = 120.0, csv_path: Optional[str] = None, resume: bool = False,
                 device: str = "meta", input_size: Optional[Sequence[int]] = None,
                 progress: Optional[Callable[[dict[str, Any], int, int], None]] = None) -> AuditSummary:
    """Audit every model ``targets`` names (``torchvision``, ``timm``, or specs); one row each.

    ``jobs=0`` runs in this process (no timeout, for debugging); ``jobs>=1`` uses that many worker
    processes, each model under ``timeout`` seconds. With ``csv_path`` rows are appended as they
    finish; ``resume=True`` skips models already in that CSV.
    """
    tasks = expand_targets(list(targets), filter_glob, limit)
    summary = AuditSummary()
    if resume and csv_path:
        done = read_done(csv_path)
        before = len(tasks)
        done_names = {name for _, name in done}
        tasks = [t for t in tasks if t.key not in done and not (t.source == "spec" and t.name in done_names)]
        summary.skipped = before - len(tasks)
    sink = CsvSink(csv_path) if csv_path else None
    total = len(tasks)
    t0 = time.perf_counter()

    def on_row(row: dict[str, Any]) -> None:
        summary.rows.append(row)
        if sink:
            sink.write(row)
        if progress:
            progress(row, len(summary.rows), total)

    try:
        if jobs <= 0:
            for t in tasks:
                on_row(audit_one(t, device, input_size))
        elif tasks:
            _run_pool(tasks, jobs, timeout, device, input_size, on_row)
    finally:
        summary.wall_seconds = time.perf_counter() - t0
        if sink:
            sink.close()
    return summary


def iter_csv(path: str) -> Iterable[dict[str, Any]]:
    with open(path, newline="") as fh:
        yield from csv.DictReader(fh)
