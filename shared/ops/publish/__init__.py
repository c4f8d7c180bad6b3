"""Publishing: export a corpus to Hub-layout Parquet with embedded media, push it to the Hub (see README.md)."""

from .export import ExportEmptyError, ExportMismatchError, ExportResult, export, export_dataset
from .push import PushError, PushResult, push, push_folder

__all__ = [
    "ExportEmptyError",
    "ExportMismatchError",
    "ExportResult",
    "PushError",
    "PushResult",
    "export",
    "export_dataset",
    "push",
    "push_folder",
]
