"""Encoding one Parquet file in bounded row groups while its bytes are hashed.

:class:`ParquetEncoder` takes record batches, keeps them in a bounded buffer and writes a
row group (zstd) whenever enough rows can no longer be overtaken by a late row (the
*reorder window*, see :mod:`capa.bundle.tables`). Its sink, :class:`HashingSink`, hashes
every byte as it is written, so the file's SHA-256 is known the moment it is closed.
Used by the bundle writer for every table, and by finalize to rebuild a table from its
journal.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["HashingSink", "ParquetEncoder"]

_HARD_CAP_GROUPS: Final = 8
"""A buffer this many row groups large is written even inside the reorder window."""

_CUT_GROUPS: Final = 4
"""Row groups written at once from a reordered buffer (when that many are out of the window)."""

_COMPACT_BATCHES: Final = 256
"""Small batches buffered before they are merged into one chunk."""

_TIME: Final = "t_mono_ns"
_SINK_BUFFER: Final = 1 << 20


class HashingSink:
    """A write-only file that hashes (SHA-256) every byte as it is written.

    Handed to :class:`pyarrow.parquet.ParquetWriter` as its sink: Parquet is written
    strictly append-only, so the digest at close is the digest of the file.
    """

    def __init__(self, path: Path) -> None:
        # O_EXCL: a table file is never appended to by two writers.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.path = path
        # Our own buffer on a raw descriptor: abort() must be able to drop buffered bytes
        # and close the descriptor exactly once (a buffered file object would close it
        # again when collected, by then possibly someone else's descriptor).
        self._pending = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        """Append ``data`` (bytes-like) and hash it."""
        view = memoryview(data)
        self._digest.update(view)
        self._pending += view
        self.size += view.nbytes
        if len(self._pending) >= _SINK_BUFFER:
            self.flush()
        return view.nbytes

    def tell(self) -> int:
        """Bytes written so far."""
        return self.size

    def flush(self) -> None:
        """Hand buffered bytes to the kernel."""
        view = memoryview(self._pending)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        finally:
            view.release()
            del self._pending[:done]

    def fsync(self) -> None:
        """Make every byte written so far durable."""
        self.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        """Flush, fsync and close (idempotent)."""
        if self.closed:
            return
        try:
            self.fsync()
        finally:
            self.closed = True
            os.close(self._fd)

    def abort(self) -> None:
        """Close without writing what is buffered (the writer was abandoned)."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        os.close(self._fd)

    def hexdigest(self) -> str:
        """SHA-256 of everything written."""
        return self._digest.hexdigest()


class ParquetEncoder:
    """Encodes batches into one Parquet file in bounded row groups, in time order.

    Args:
        path: the file to create (must not exist).
        schema: schema of every batch (with the file's schema metadata).
        group_rows: rows per row group.
        window_ns: the reorder window (0: write in arrival order, still noting disorder).
        count_channels: keep per-channel row counts of a long (``channel``) table.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        group_rows: int,
        window_ns: int,
        count_channels: bool = False,
    ) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.schema = schema
        self.group_rows = group_rows
        self.window_ns = window_ns
        self._timed = _TIME in schema.names and _is_integer(schema.field(_TIME).type)
        self._sink = HashingSink(path)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self._sink,
            schema,
            compression="zstd",
            use_dictionary=dictionary_columns(schema),
        )
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._newest: int | None = None  # largest time buffered or written
        self._in_order = True  # the buffer, in arrival order, is sorted by time
        self._buffer_last: int | None = None
        self._written_max: int | None = None
        self._nulls_written = False
        # Inside the reorder window nothing can be cut before the newest time reaches this.
        self._hold_until: int | None = None
        self._compact_from = 0  # buffer[:this] are already compacted chunks
        self.sorted = True
        self.rows = 0
        self.groups = 0
        self._count_channels = count_channels and "channel" in schema.names
        self.channel_counts: dict[str, int] = {}
        self.non_null: dict[str, int] = {}
        self.footer_metadata: dict[str, str] = {}
        """Key-value metadata added to the footer at close (known only during the run)."""

    @property
    def bytes_written(self) -> int:
        """Bytes of Parquet written so far."""
        return self._sink.size

    def append(self, batch: pa.RecordBatch) -> None:
        """Add a batch (written once a row group is full and out of the reorder window)."""
        if batch.num_rows == 0:
            return
        self._note_counts(batch)
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if len(self._buffer) - self._compact_from >= _COMPACT_BATCHES:
            self._compact()
        self.rows += batch.num_rows
        if self._timed:
            self._note_times(batch)
        if self._buffered >= self.group_rows and (
            self._hold_until is None
            or (self._newest is not None and self._newest >= self._hold_until)
            or self._buffered >= _HARD_CAP_GROUPS * self.group_rows
        ):
            self._cut(final=False)

    def _compact(self) -> None:
        """Merge the small batches at the buffer's end into one (order kept).

        A polled device hands over a few rows per batch: without this the buffer would
        hold tens of thousands of tiny batches (each with its own buffers) and cutting a
        row group would concatenate all of them at once.
        """
        import pyarrow as pa

        tail = self._buffer[self._compact_from :]
        merged = _combine(pa.Table.from_batches(tail, schema=self.schema), self.schema)
        self._buffer[self._compact_from :] = merged.to_batches()
        self._compact_from = len(self._buffer)

    def _note_counts(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        if self._count_channels:
            for item in pc.value_counts(batch.column("channel")).to_pylist():
                name = str(item["values"])
                self.channel_counts[name] = self.channel_counts.get(name, 0) + int(item["counts"])
        else:
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                self.non_null[name] = self.non_null.get(name, 0) + len(column) - column.null_count

    def _note_times(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        t = batch.column(_TIME)
        bounds = pc.min_max(t).as_py()
        low, high = bounds["min"], bounds["max"]
        if low is None:
            return  # only rows without a time: they go last
        if t.null_count or (
            len(t) > 1 and not pc.all(pc.less_equal(t.slice(0, len(t) - 1), t.slice(1))).as_py()
        ):
            self._in_order = False
        if self._buffer_last is not None and low < self._buffer_last:
            self._in_order = False
        self._buffer_last = high if self._buffer_last is None else max(self._buffer_last, high)
        self._newest = high if self._newest is None else max(self._newest, high)

    def _cut(self, *, final: bool) -> None:
        """Write the rows that can no longer be overtaken (row groups of ``group_rows``)."""
        import pyarrow as pa

        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        if not self._timed:
            self._write(table)
            self._reset_buffer(None)
            return
        if self.window_ns > 0 and not self._in_order:
            from capa.bundle.merge import sort_table

            table = sort_table(self._buffer, self.schema)
        elif self.window_ns == 0 and not self._in_order:
            self.sorted = False  # arrival order is written as it came
        cut = table.num_rows
        if not final and self.window_ns > 0:
            horizon = (self._newest or 0) - self.window_ns
            cut = _rows_at_or_below(table, horizon)
            timed = _non_null_rows(table)
            batch_rows = _CUT_GROUPS * self.group_rows
            if cut < batch_rows and self._buffered < _HARD_CAP_GROUPS * self.group_rows:
                # Not enough rows out of the window yet: keep the (now sorted) rows and
                # wait until the last of the next few groups leaves the window, so the
                # buffer is neither sorted again on every batch nor cut into small groups
                # (each cut sorts the window's rows again: cutting several groups at once
                # keeps that overhead small).
                k = min(batch_rows, timed) - 1
                times = table.column(_TIME)
                self._hold_until = times[k].as_py() + self.window_ns if k >= 0 else None
                self._keep(table)
                return
            if cut == 0:
                cut = timed  # memory bound: write it, note any disorder it causes later
        rest = table.slice(cut)
        self._hold_until = None
        if self.window_ns > 0:
            for start in range(0, cut, self.group_rows):
                self._write(table.slice(start, min(self.group_rows, cut - start)))
        else:
            self._write(table.slice(0, cut))  # a full group and the batch that filled it
        self._reset_buffer(rest if rest.num_rows else None)

    def _keep(self, table: pa.Table) -> None:
        """Make a sorted table the buffer (so it need not be sorted again)."""
        import pyarrow.compute as pc

        self._buffer = _combine(table, self.schema).to_batches()
        self._compact_from = len(self._buffer)
        self._in_order = table.column(_TIME).null_count == 0
        self._buffer_last = pc.max(table.column(_TIME)).as_py()

    def _reset_buffer(self, rest: pa.Table | None) -> None:
        import pyarrow.compute as pc

        if rest is None:
            self._buffer, self._buffered, self._compact_from = [], 0, 0
            self._in_order, self._buffer_last = True, None
            return
        self._buffer = _combine(rest, self.schema).to_batches()
        self._compact_from = len(self._buffer)
        self._buffered = rest.num_rows
        # What stays was sorted (rows without a time last) unless the window is 0.
        high = pc.max(rest.column(_TIME)).as_py() if self._timed else None
        self._buffer_last = high
        if self.window_ns > 0:
            self._in_order = not self._timed or rest.column(_TIME).null_count == 0

    def _write(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        if table.num_rows == 0:
            return
        if self._timed:
            t = table.column(_TIME)
            bounds = pc.min_max(t).as_py()
            low, high = bounds["min"], bounds["max"]
            if low is not None and (
                (self._written_max is not None and low < self._written_max) or self._nulls_written
            ):
                self.sorted = False  # a row arrived after its reorder window
            if t.null_count:
                self._nulls_written = True
            if high is not None:
                self._written_max = (
                    high if self._written_max is None else max(self._written_max, high)
                )
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.groups += 1

    def fsync(self) -> None:
        """Make the row groups written so far durable."""
        self._sink.fsync()

    def close(self) -> str:
        """Write every buffered row and the footer, fsync; return the file's SHA-256."""
        self._cut(final=True)
        assert self._writer is not None
        if self.groups == 0:
            # An empty table is still a valid Parquet file with its schema.

            from capa.columnar import empty_table

            self._writer.write_table(empty_table(self.schema))
        self._writer.add_key_value_metadata(
            {**self.footer_metadata, "capa.sorted": "true" if self.sorted else "false"}
        )
        self._writer.close()
        self._writer = None
        self._sink.close()
        return self._sink.hexdigest()

    def abort(self) -> None:
        """Release the file without writing anything more."""
        self._writer = None  # the ParquetWriter never closes a sink it did not open
        self._sink.abort()


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth Parquet dictionary encoding: text and Arrow dictionaries only.

    pyarrow tries a dictionary for every column by default and falls back once the
    dictionary page overflows; on measured float samples (noise never repeats) that
    attempt cost 5.6x the CPU of plain encoding and made the file 28 % larger
    (bench figures in bench/README.md). Names, units, statuses and sources repeat:
    those keep their dictionaries.
    """
    import pyarrow as pa

    return [
        f.name
        for f in schema
        if pa.types.is_dictionary(f.type)
        or pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
    ]


def _combine(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` as one chunk per column (dictionaries unified)."""
    import pyarrow as pa

    try:
        return table.unify_dictionaries().combine_chunks()
    except pa.ArrowInvalid:
        # Dictionaries holding a null entry cannot be unified: combine decoded values.
        plain = pa.schema(
            [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in schema
            ],
            metadata=schema.metadata,
        )
        return table.cast(plain).combine_chunks().cast(schema)


def _is_integer(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(typ))


def _non_null_rows(table: pa.Table) -> int:
    return int(table.num_rows - table.column(_TIME).null_count)


def _rows_at_or_below(table: pa.Table, horizon: int) -> int:
    """Leading rows of a time-sorted table (nulls last) with ``t_mono_ns <= horizon``."""
    import numpy as np

    times = table.column(_TIME).slice(0, _non_null_rows(table)).to_numpy()
    return int(np.searchsorted(times, horizon, side="right"))
