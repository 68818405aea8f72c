"""``audit_models``: VCNN conversion over whole zoos, one row per model, robust to crashes and hangs.

Models are built on the meta device (no memory, no compute), traced and converted. Each model runs
on a worker of ``zenfx.executor`` (local processes, or Ray actors) with a per-model timeout and, on
the local backend, a cap on the worker's address space: a model that crashes, hangs or kills its
worker is a row with its error, never the end of the audit. Rows are appended to the CSV as they
finish (``zenfx.runlog.CsvLog``), so an interrupted audit resumes where it stopped (``resume=True``
skips rows already in the CSV; a row cut mid-write is dropped and re-run).
"""

from __future__ import annotations

import fnmatch
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .executor import make_executor
from .runlog import CsvLog
from .vcnn.report import KINDS, NOT_CONVERTIBLE, VERDICTS, reason_category

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


def expand_targets(targets: Sequence[str], filter_glob: str | None = None, limit: int | None = None) -> list[AuditTask]:
    """'torchvision' / 'timm' expand to their classification registries; anything else is a model spec."""
    from .loading import timm_names, torchvision_names

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


def audit_one(task: AuditTask, device: str = "meta", input_size: Sequence[int] | None = None) -> dict[str, Any]:
    """Load, trace and convert one model; every failure becomes a field of the row."""
    import warnings

    from .errors import NotTraceableError
    from .pipeline import load_and_trace, to_vcnn

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


# --------------------------------------------------------------------------- running many


# Address-space cap per worker: a model that falls back to a real CPU build and is too big fails with
# MemoryError in its own row instead of waking the kernel's OOM killer on a shared machine.
WORKER_ADDRESS_SPACE_GB = float(os.environ.get("ZENFX_AUDIT_MAX_GB", "12"))


def _worker_state(arg: tuple[str, Sequence[int] | None]) -> tuple[str, Sequence[int] | None]:
    """Per-worker state (the executor's ``init``): the device and input size every model uses."""
    return arg


def _audit_task(state: tuple[str, Sequence[int] | None], task: AuditTask) -> dict[str, Any]:
    """The executor's ``fn``: a task is a model name (``AuditTask``), never a built model."""
    device, input_size = state
    return audit_one(task, device, input_size)


def _outcome_row(task: AuditTask, outcome: Any) -> dict[str, Any]:
    """The row of one executor outcome: the worker's row, or an error row for a timeout / dead worker."""
    if outcome.status == "ok":
        return outcome.value
    row = _blank_row(task)
    row["seconds"] = round(outcome.seconds, 3)
    if outcome.status == "timeout":
        row["error"] = outcome.error
    elif (outcome.error or "").startswith("WorkerDied"):
        row["error"] = "worker crashed" + outcome.error.split("worker died", 1)[-1]
    else:
        row["error"] = outcome.error or "unknown error"
    return row


def check_known(tasks: Sequence[AuditTask]) -> None:
    """Names the user typed that no registry has: exit 2 with close matches before any work starts
    (a typo is a usage error, not an error row in an otherwise clean audit)."""
    import difflib

    from .errors import UnknownModelError
    from .loading import timm_names, torchvision_names

    for t in tasks:
        if t.source in SOURCES:
            names = torchvision_names() if t.source == "torchvision" else timm_names()
            where = t.source
        elif not any(c in t.name for c in ".:/" + os.sep):
            names = torchvision_names() + timm_names()
            where = "torchvision or timm"
        else:
            head = t.name.rsplit(":", 1)[0]
            if head.endswith(".py") and not os.path.isfile(head):
                raise UnknownModelError(f"file '{head}' does not exist")
            continue
        if t.name not in names:
            close = difflib.get_close_matches(t.name, list(dict.fromkeys(names)), n=5, cutoff=0.6)
            raise UnknownModelError(f"unknown model '{t.name}' in {where}",
                                    hint=f"did you mean {', '.join(close)}?" if close else None)


def _resume(tasks: list[AuditTask], log: CsvLog) -> list[AuditTask]:
    done = {(r.get("source", ""), r.get("name", "")) for r in log.rows()}
    done_names = {name for _, name in done}
    return [t for t in tasks if t.key not in done and not (t.source == "spec" and t.name in done_names)]


def audit_models(targets: Sequence[str] = SOURCES, *, filter_glob: str | None = None, limit: int | None = None,
                 jobs: int = 1, timeout: float | None = 120.0, csv_path: str | None = None, resume: bool = False,
                 device: str = "meta", input_size: Sequence[int] | None = None,
                 progress: Callable[[dict[str, Any], int, int], None] | None = None,
                 backend: str = "local", ray_address: str | None = None) -> AuditSummary:
    """Audit every model ``targets`` names (``torchvision``, ``timm``, or specs); one row each.

    ``jobs=0`` runs in this process (no timeout, for debugging); ``jobs>=1`` uses that many workers
    of ``backend`` (``local`` processes or ``ray`` actors), each model under ``timeout`` seconds. With
    ``csv_path`` rows are appended as they finish (``zenfx.runlog.CsvLog``: a row cut by a kill is
    dropped and re-run; a CSV with other columns is refused); ``resume=True`` skips models already
    there, and without it a CSV that already holds rows is refused rather than appended to.
    """
    tasks = expand_targets(list(targets), filter_glob, limit)
    check_known([t for t in tasks if t.source == "spec" or any(t.spec == x for x in targets)])
    summary = AuditSummary()
    log = CsvLog(csv_path, CSV_FIELDS, what="audit CSV") if csv_path else None
    if log is not None and log.rows() and not resume:
        log.close()
        raise UsageError(f"audit CSV {csv_path} already holds {len(log.rows())} rows",
                         hint="pass --resume to continue it, or choose another --csv")
    if resume and log is not None:
        before = len(tasks)
        tasks = _resume(tasks, log)
        summary.skipped = before - len(tasks)
    t0 = time.perf_counter()

    def on_row(row: dict[str, Any]) -> None:
        summary.rows.append(row)
        if log is not None:
            log.append(row)
        if progress:
            progress(row, len(summary.rows), len(tasks))

    try:
        if tasks:
            workers = 0 if jobs <= 0 else min(jobs, len(tasks))
            options = {"memory_limit_gb": WORKER_ADDRESS_SPACE_GB or None}
            with make_executor(backend, workers, ray_address=ray_address, init=_worker_state,
                               init_arg=(device, input_size), **options) as ex:
                for outcome in ex.map(_audit_task, tasks, timeout=timeout if jobs > 0 else None):
                    on_row(_outcome_row(tasks[outcome.index], outcome))
    finally:
        summary.wall_seconds = time.perf_counter() - t0
        if log is not None:
            log.close()
    return summary
