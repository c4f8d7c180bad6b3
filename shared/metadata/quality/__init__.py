"""Clip quality: one pass over a corpus' media measures every clip (level, silence, stills, black frames,
cuts, lengths) and writes a Parquet table of measures and flags keyed by clip id (``avsets quality``).

This package root holds only the table contract and the thresholds, which the loader (``load_dataset(
quality=...)``), export and report import; the pass (``avsets.ops.quality.run.run_quality``) imports the loader, so importing it here
would make a cycle. The measures of one clip are ``avsets.ops.quality.measure.measure_clip``.
"""

from __future__ import annotations

from .table import MEASURE_COLUMNS, QUALITY_FLAGS, QualityTableError, read_quality_table, table_metadata
from .thresholds import DEFAULT_THRESHOLDS, ThresholdError, Thresholds

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MEASURE_COLUMNS",
    "QUALITY_FLAGS",
    "QualityTableError",
    "ThresholdError",
    "Thresholds",
    "read_quality_table",
    "table_metadata",
]
