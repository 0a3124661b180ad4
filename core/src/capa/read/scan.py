"""Reading a time window of a Parquet table without reading the rest of it.

Every bundle table has ``t_mono_ns``; Parquet keeps its min / max per row group in the
footer. A window read opens the footer, keeps only the row groups whose range overlaps the
window, reads those one at a time and cuts them exactly. Memory is the result plus one row
group, whatever the file's length, and a file whose row groups are out of order (a late
batch, ``capa.sorted = false``) is still read correctly: only the statistics are trusted,
never the order. A row group without statistics is read (and cut), never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "RowGroupCache",
    "ScanStats",
    "overlapping_row_groups",
    "scan_window",
    "time_column_index",
]

TIME = "t_mono_ns"


@dataclass
class ScanStats:
    """What a read touched: files, row groups read of those present, rows read."""

    files: int = 0
    row_groups_total: int = 0
    row_groups_read: int = 0
    rows_read: int = 0

    def add(self, other: ScanStats) -> None:
        """Accumulate another scan's counts."""
        self.files += other.files
        self.row_groups_total += other.row_groups_total
        self.row_groups_read += other.row_groups_read
        self.rows_read += other.rows_read


class RowGroupCache:
    """The last few row groups read per file, for consecutive windows over one file.

    A reader stepping through a run window by window (``capa export``) meets row groups
    that span several windows (a slow device's table beside a fast one's); kept here, they
    are read once. Memory: at most ``per_file`` row groups per file.
    """

    def __init__(self, per_file: int = 2) -> None:
        self.per_file = per_file
        self._tables: dict[Path, dict[tuple[int, tuple[str, ...] | None], pa.Table]] = {}

    def get(self, path: Path, key: tuple[int, tuple[str, ...] | None]) -> pa.Table | None:
        """A cached row group, or None."""
        return self._tables.get(path, {}).get(key)

    def put(self, path: Path, key: tuple[int, tuple[str, ...] | None], table: pa.Table) -> None:
        """Keep a row group, forgetting the oldest of that file beyond ``per_file``."""
        kept = self._tables.setdefault(path, {})
        kept[key] = table
        while len(kept) > self.per_file:
            del kept[next(iter(kept))]


def time_column_index(meta: pq.FileMetaData) -> int | None:
    """Index of the ``t_mono_ns`` column in a Parquet file's columns, or None."""
    for j in range(meta.num_columns):
        if meta.schema.column(j).path == TIME:
            return j
    return None


def overlapping_row_groups(meta: pq.FileMetaData, lo: int | None, hi: int | None) -> list[int]:
    """Row groups whose ``t_mono_ns`` range may hold a time in ``[lo, hi)``."""
    groups = list(range(meta.num_row_groups))
    if lo is None and hi is None:
        return groups
    col = time_column_index(meta)
    if col is None:
        return groups
    keep: list[int] = []
    for i in groups:
        rg = meta.row_group(i)
        if rg.num_rows == 0:
            continue
        stats = rg.column(col).statistics
        if stats is None or not stats.has_min_max:
            keep.append(i)  # unknown range: read it and cut it
            continue
        if hi is not None and int(stats.min) >= hi:
            continue
        if lo is not None and int(stats.max) < lo:
            continue
        keep.append(i)
    return keep


def _cut(table: pa.Table, lo: int | None, hi: int | None) -> pa.Table:
    # Typed scalars: a bare Python int makes pyarrow look for (and import) pandas.
    import pyarrow as pa
    import pyarrow.compute as pc

    if lo is None and hi is None:
        return table
    t = table.column(TIME)
    mask = None
    if lo is not None:
        mask = pc.greater_equal(t, pa.scalar(lo, pa.int64()))
    if hi is not None:
        upper = pc.less(t, pa.scalar(hi, pa.int64()))
        mask = upper if mask is None else pc.and_(mask, upper)
    return table.filter(mask)


def scan_window(
    paths: Sequence[Path],
    *,
    columns: Sequence[str] | None,
    lo: int | None,
    hi: int | None,
    stats: ScanStats,
    row_filter: Callable[[pa.Table], pa.Table] | None = None,
    cache: RowGroupCache | None = None,
) -> Iterator[pa.Table]:
    """Yield, per overlapping row group of ``paths`` in order, its rows in ``[lo, hi)``.

    ``columns`` absent from a file are skipped (a table may be read for several channels
    of which each file holds some); ``row_filter`` is applied to each piece after cutting.
    With a ``cache``, row groups read by an earlier call are taken from it.
    """
    import pyarrow.parquet as pq

    for path in paths:
        pf = pq.ParquetFile(path)
        try:
            stats.files += 1
            meta = pf.metadata
            stats.row_groups_total += meta.num_row_groups
            present = set(pf.schema_arrow.names)
            wanted = None if columns is None else [c for c in columns if c in present]
            for i in overlapping_row_groups(meta, lo, hi):
                key = (i, None if wanted is None else tuple(wanted))
                piece = cache.get(path, key) if cache is not None else None
                if piece is None:
                    piece = pf.read_row_group(i, columns=wanted)
                    stats.row_groups_read += 1
                    stats.rows_read += piece.num_rows
                    if cache is not None:
                        cache.put(path, key, piece)
                piece = _cut(piece, lo, hi)
                if row_filter is not None:
                    piece = row_filter(piece)
                if piece.num_rows:
                    yield piece
        finally:
            pf.close()
