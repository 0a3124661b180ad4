"""Row counts of a bundle's tables for ``manifest.counts``, with a fixed memory window.

A table the writer closed and that is unchanged since comes with its counts in the table
index (:mod:`capa.bundle.tableindex`): nothing is read. Any other table is counted from
its Parquet footer (rows, and per column null counts from the column statistics) or, for
``scalars.parquet``'s per-channel counts, from its ``channel`` column one row group at a
time — never the whole column at once.

``counts`` keys:

- ``scalars``: ``{"rows": N, "channels": {<channel>: rows}}``;
- ``samples``: ``{<table>: {"rows": N, "parts": P, "channels": {<channel>: non-null}}}``;
- ``device_records``: ``{<family>: rows}``; ``frames``: ``{<camera>: rows}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capa.bundle.paths import DEVICE_RECORDS_DIR, SAMPLES_DIR, SCALARS_STEM, VIDEO_DIR

if TYPE_CHECKING:
    from capa.bundle.tables import ClosedTable

__all__ = ["channel_columns", "table_counts"]


def channel_columns(names: list[str]) -> list[str]:
    """The value columns of a wide table (not ``t_mono_ns``, ``.raw`` or ``.status``).

    Channel names cannot contain a ``.`` (bundle-schema.md), so the suffix tells the role.
    """
    return [n for n in names if n != "t_mono_ns" and "." not in n]


def table_counts(bundle: Path, known: Mapping[str, ClosedTable]) -> dict[str, Any]:
    """Counts of every table of ``bundle``; ``known`` are the unchanged indexed files."""
    counts: dict[str, Any] = {}
    scalars = bundle / f"{SCALARS_STEM}.parquet"
    if scalars.exists():
        entry = known.get(scalars.name)
        if entry is not None:
            rows, per_channel = entry.rows, dict(entry.counts)
        else:
            rows, per_channel = _scan_channels(scalars)
        counts["scalars"] = {"rows": rows, "channels": dict(sorted(per_channel.items()))}
    samples: dict[str, Any] = {}
    for folder in sorted(p for p in (bundle / SAMPLES_DIR).glob("*") if p.is_dir()):
        total, parts = 0, 0
        channels: dict[str, int] = {}
        for part in sorted(folder.glob("*.parquet")):
            entry = known.get(part.relative_to(bundle).as_posix())
            if entry is not None:
                rows, non_null = entry.rows, entry.counts
            else:
                rows, non_null = _footer_non_null(part)
            total += rows
            parts += 1
            for name in channel_columns(list(non_null)):
                channels[name] = channels.get(name, 0) + int(non_null[name])
        samples[folder.name] = {"rows": total, "parts": parts, "channels": channels}
    if samples:
        counts["samples"] = samples
    for key, sub, suffix in (
        ("device_records", DEVICE_RECORDS_DIR, ".parquet"),
        ("frames", VIDEO_DIR, ".frames.parquet"),
    ):
        found: dict[str, int] = {}
        for path in sorted((bundle / sub).glob(f"*{suffix}")):
            entry = known.get(path.relative_to(bundle).as_posix())
            found[path.name[: -len(suffix)]] = (
                entry.rows if entry is not None else _footer_rows(path)
            )
        if found:
            counts[key] = found
    return counts


def _footer_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _scan_channels(path: Path) -> tuple[int, dict[str, int]]:
    """Rows and per-channel rows of a long table, one row group at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    per_channel: dict[str, int] = {}
    for index in range(file.metadata.num_row_groups):
        column = file.read_row_group(index, columns=["channel"]).column(0)
        for item in pc.value_counts(column).to_pylist():
            name = str(item["values"])
            per_channel[name] = per_channel.get(name, 0) + int(item["counts"])
    return int(file.metadata.num_rows), per_channel


def _footer_non_null(path: Path) -> tuple[int, dict[str, int]]:
    """Rows and non-null values per top-level column, from the footer's statistics.

    A column chunk without a null count in its statistics is read (that row group and
    column only) to count them.
    """
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    meta = file.metadata
    names = file.schema_arrow.names
    leaf_of = {meta.schema.column(i).path.split(".")[0]: i for i in range(meta.num_columns)}
    non_null = dict.fromkeys(names, 0)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for name in names:
            leaf = _leaf_index(meta, name, leaf_of)
            stats = group.column(leaf).statistics if leaf is not None else None
            if stats is not None and stats.has_null_count:
                non_null[name] += group.num_rows - int(stats.null_count)
            else:
                column = file.read_row_group(g, columns=[name]).column(0)
                non_null[name] += len(column) - column.null_count
    return int(meta.num_rows), non_null


def _leaf_index(meta: Any, name: str, leaf_of: dict[str, int]) -> int | None:
    """The Parquet leaf column holding a top-level Arrow column (exact path match first)."""
    for i in range(meta.num_columns):
        if meta.schema.column(i).path == name:
            return i
    return leaf_of.get(name)
