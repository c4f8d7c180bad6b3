"""Clip quality: one pass over a corpus' media measures every clip (level, silence, stills, black frames,
cuts, lengths) and writes a Parquet table of measures and flags keyed by clip id (``avsets quality``)."""

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
