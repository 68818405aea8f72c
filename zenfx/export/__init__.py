"""Export: a model, spec or genome as a standalone Python module that needs only torch.

Modules: ``api`` (``export_model``: resolve, trace, emit, verify, write), ``trace`` (the tracer that
keeps module paths and both train and eval graphs), ``layers`` (each layer as a constructor call),
``codegen`` (the readable forward).
"""

from __future__ import annotations

from .api import ExportResult, NotExportableError, build_exported, export_model

__all__ = ["ExportResult", "NotExportableError", "build_exported", "export_model"]
