"""Cutting a corpus' parsed table into streaming shards (the ``gen_kwargs`` lists of DESIGN.md)."""

from __future__ import annotations

import pyarrow as pa


def table_slices(table: pa.Table, rows_per_shard: int) -> list[pa.Table]:
    """~``rows_per_shard``-row zero-copy slices in file order.

    An empty table keeps one empty slice, so its split comes back empty instead of missing (DESIGN.md
    "Empty splits").
    """
    if rows_per_shard < 1:
        raise ValueError("rows_per_shard must be >= 1")
    return [table.slice(i, rows_per_shard) for i in range(0, max(table.num_rows, 1), rows_per_shard)]
