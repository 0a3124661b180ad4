"""Bundle tables written as final Parquet while the run records, journaled for a crash.

Every table of a bundle (``scalars``, ``samples/<device>/part-NNNNN``,
``device_records/<family>``, ``video/<camera>.frames``) is written twice while recording:

- to an Arrow IPC **journal** ``<stem>.in-flight.arrows`` (:class:`InflightStream`),
  fsynced at every flush, from which ``capa finalize`` rebuilds the table after a kill;
- to its **Parquet file** ``<stem>.in-flight.parquet`` (zstd), one row group at a time from
  a bounded buffer (:class:`ParquetEncoder`), also fsynced at every flush so closing it
  never has to write back a run's worth of dirty pages.

Closing a table writes the last row group and the footer, fsyncs, renames the file to
``<stem>.parquet``, fsyncs the folder and only then deletes the journal: wherever a kill
lands, either the final file or the journal holds every durable row. The SHA-256 of the
Parquet file is computed from the bytes as they are written (:class:`HashingSink`) and
recorded with its size, mtime and counts in the bundle's table index (``.capa-tables.jsonl``,
:mod:`capa.bundle.tableindex`), so sealing never reads a closed table back.

Wide sample tables (:class:`PartedTable`) roll into a new part at about
:data:`PART_VALUES` values (rows x columns): the journal never holds more than one part.

Row order: a table with an integer ``t_mono_ns`` column keeps its rows in time order. The
buffer is cut into a row group only for rows older than the newest buffered row by the
table's *reorder window* (2 s for ``scalars`` and device records, whose producers
interleave); each group is sorted. A row that arrives later than that is still written,
never dropped, and the file's Parquet key-value metadata says ``capa.sorted = false``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from capa.bundle.atomic import fsync_dir
from capa.bundle.inflight import InflightStream
from capa.bundle.paths import IN_FLIGHT_SUFFIX
from capa.bundle.trash import discard

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "LONG_GROUP_ROWS",
    "PARQUET_IN_FLIGHT_SUFFIX",
    "PART_VALUES",
    "REORDER_WINDOW_NS",
    "WIDE_GROUP_ROWS",
    "ClosedTable",
    "EncoderFailed",
    "HashingSink",
    "JournaledTable",
    "ParquetEncoder",
    "PartedTable",
    "part_name",
]

PARQUET_IN_FLIGHT_SUFFIX: Final = ".in-flight.parquet"
"""A Parquet file still being written (no footer yet); finalize deletes it after a kill."""

LONG_GROUP_ROWS: Final = 1 << 16
"""Rows per row group of the long tables (scalars, device records, frames)."""

WIDE_GROUP_ROWS: Final = 1 << 17
"""Rows per row group of the wide sample tables."""

PART_VALUES: Final = 1 << 26
"""Values (rows x columns) after which a wide table rolls into its next part."""

REORDER_WINDOW_NS: Final = 2_000_000_000
"""How far back in ``t_mono_ns`` a late row may still be sorted into place."""

_HARD_CAP_GROUPS: Final = 8
"""A buffer this many row groups large is written even inside the reorder window."""

_COMPACT_BATCHES: Final = 256
"""Small batches buffered before they are merged into one chunk."""

_TIME: Final = "t_mono_ns"
_SINK_BUFFER: Final = 1 << 20


class EncoderFailed(Exception):
    """The Parquet side of a table failed after its batch reached the journal."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


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


@dataclass
class ClosedTable:
    """A table file that is complete and in its final place, with what sealing needs.

    Attributes:
        rel: path relative to the bundle.
        stream: the accounting stream key the rows belong to.
        sha256: digest of the file's bytes (computed while they were written).
        size: file size in bytes.
        mtime_ns: modification time after the final fsync.
        inode: the file's inode (a replaced file is never mistaken for this one).
        rows: rows in the file.
        sorted: whether the rows are in ``t_mono_ns`` order.
        counts: per channel (scalars) or per column (wide) non-null values.
        files_column: whether the schema names a ``capa.files_column``.
        producer: a table its producer wrote itself (``capa.written_by = producer``): not
            the writer's rows, so accounting leaves it out.
    """

    rel: str
    stream: str
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    rows: int
    sorted: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    files_column: bool = False
    producer: bool = False

    def as_json(self) -> str:
        """One line of the table index."""
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))


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
            self._sink, schema, compression="zstd"
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
        """Write the rows that can no longer be overtaken as one row group."""
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
            if cut < self.group_rows and self._buffered < _HARD_CAP_GROUPS * self.group_rows:
                # Not a full row group out of the window yet: keep the (now sorted) rows
                # and wait until the group's last row leaves the window, so the buffer is
                # neither sorted again on every batch nor cut into small groups.
                k = min(self.group_rows, timed) - 1
                times = table.column(_TIME)
                self._hold_until = times[k].as_py() + self.window_ns if k >= 0 else None
                self._keep(table)
                return
            if cut == 0:
                cut = timed  # memory bound: write it, note any disorder it causes later
        head, rest = table.slice(0, cut), table.slice(cut)
        self._hold_until = None
        self._write(head)
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

            self._writer.write_table(self.schema.empty_table())
        self._writer.add_key_value_metadata({"capa.sorted": "true" if self.sorted else "false"})
        self._writer.close()
        self._writer = None
        self._sink.close()
        return self._sink.hexdigest()

    def abort(self) -> None:
        """Release the file without writing anything more."""
        self._writer = None  # the ParquetWriter never closes a sink it did not open
        self._sink.abort()


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


class JournaledTable:
    """One table file: journal plus Parquet encoder, closed into ``<stem>.parquet``.

    Args:
        bundle: the bundle directory.
        stem: the table's path without suffix (``scalars``, ``device_records/bal``).
        stream: the accounting stream key of its rows.
        schema: schema of every batch.
        group_rows: rows per row group.
        window_ns: reorder window (see :class:`ParquetEncoder`).
        count_channels: keep per-channel counts (the long ``scalars`` table).
    """

    def __init__(
        self,
        bundle: Path,
        stem: str,
        stream: str,
        schema: pa.Schema,
        *,
        group_rows: int = LONG_GROUP_ROWS,
        window_ns: int = REORDER_WINDOW_NS,
        count_channels: bool = False,
    ) -> None:
        self.bundle = bundle
        self.stem = stem
        self.stream = stream
        self.schema = schema
        base = bundle / stem
        self.final_path = base.with_name(base.name + ".parquet")
        # The journal first: a Parquet file in flight is only ever rebuilt from it.
        self.journal = InflightStream(base.with_name(base.name + IN_FLIGHT_SUFFIX), schema)
        try:
            self.encoder = ParquetEncoder(
                base.with_name(base.name + PARQUET_IN_FLIGHT_SUFFIX),
                schema,
                group_rows=group_rows,
                window_ns=window_ns,
                count_channels=count_channels,
            )
        except BaseException:
            self.journal.abort()
            raise
        self.closed = False
        self.encoder_failed = False

    @property
    def rows(self) -> int:
        """Rows appended."""
        return self.encoder.rows

    @property
    def bytes_written(self) -> int:
        """Journal bytes appended (the durability measure of the flush)."""
        return self.journal.bytes_written

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a batch to the journal and the Parquet encoder.

        Raises:
            OSError: the journal write failed (the batch is not in the table).
            EncoderFailed: the batch is in the journal, but the Parquet file failed; the
                table is then rebuilt from the journal by finalize.
        """
        self.journal.write(batch)
        if self.encoder_failed:
            return
        try:
            self.encoder.append(batch)
        except Exception as exc:
            self.encoder_failed = True
            with contextlib.suppress(Exception):
                self.encoder.abort()
            raise EncoderFailed(exc) from exc

    def flush(self) -> bool:
        """Fsync the journal and the Parquet file; whether there was anything new."""
        if self.closed:
            return False
        wrote = self.journal.flush()
        if wrote and not self.encoder_failed:
            self.encoder.fsync()
        return wrote

    def close(self) -> ClosedTable | None:
        """Close the Parquet file into its final name, then drop the journal.

        ``None`` when the table was already closed or released (:meth:`abort`).
        """
        if self.closed:
            return None
        if self.encoder_failed:
            raise OSError(f"{self.encoder.path}: Parquet writing failed earlier")
        digest = self.encoder.close()
        os.replace(self.encoder.path, self.final_path)
        fsync_dir(self.final_path.parent)
        self.closed = True
        st = self.final_path.stat()
        closed = ClosedTable(
            rel=self.final_path.relative_to(self.bundle).as_posix(),
            stream=self.stream,
            sha256=digest,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            rows=self.encoder.rows,
            sorted=self.encoder.sorted,
            counts=dict(self.encoder.channel_counts or self.encoder.non_null),
            files_column=b"capa.files_column" in (self.schema.metadata or {}),
        )
        # The final file holds every row: the journal is redundant from here on. Out of
        # the bundle at once; its blocks are freed in the background (capa.bundle.trash).
        self.journal.abort()
        discard(self.journal.path, self.bundle)
        return closed

    def release(self) -> None:
        """Leave the table to finalize: end the journal cleanly, drop the Parquet side.

        For a table whose Parquet file is not trusted (the writer failed). If even the
        journal's end marker cannot be written, the journal is left as it is.
        """
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.encoder.abort()
        try:
            self.journal.close()
        except Exception:
            self.journal.abort()

    def abort(self) -> None:
        """Release both files untouched (finalize rebuilds the table from the journal)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.encoder.abort()
        finally:
            self.journal.abort()


def part_name(number: int) -> str:
    """``part-00003``: the stem of a wide table's part."""
    return f"part-{number:05d}"


class PartedTable:
    """A wide sample table: ``samples/<table>/part-NNNNN.parquet``, rolled by size.

    Args:
        bundle: the bundle directory.
        folder: ``samples/<table>`` relative to the bundle.
        stream: the accounting stream key.
        schema: the table's schema (the first batch's), with its file metadata.
        on_closed: called with each part closed (the table index records it).
        part_values: values (rows x columns) per part.
        group_rows: rows per row group.
    """

    def __init__(
        self,
        bundle: Path,
        folder: str,
        stream: str,
        schema: pa.Schema,
        *,
        on_closed: Any,
        part_values: int = PART_VALUES,
        group_rows: int = WIDE_GROUP_ROWS,
    ) -> None:
        self.bundle = bundle
        self.folder = folder
        self.stream = stream
        self.schema = schema
        self.part_rows = max(1, part_values // max(1, len(schema)))
        self.group_rows = min(group_rows, self.part_rows)
        self._on_closed = on_closed
        self.current: JournaledTable | None = None
        self.next_part = 0
        self.rows = 0
        self._bytes_closed = 0
        (bundle / folder).mkdir(parents=True, exist_ok=True)

    @property
    def bytes_written(self) -> int:
        """Journal bytes appended over every part."""
        current = self.current  # read once: the writer thread may roll it meanwhile
        return self._bytes_closed + (current.bytes_written if current is not None else 0)

    def _open_part(self) -> JournaledTable:
        import pyarrow as pa

        meta = dict(self.schema.metadata or {})
        meta[b"capa.part"] = str(self.next_part).encode()
        schema = pa.schema(list(self.schema), metadata=meta)
        part = JournaledTable(
            self.bundle,
            f"{self.folder}/{part_name(self.next_part)}",
            self.stream,
            schema,
            group_rows=self.group_rows,
            window_ns=0,
        )
        self.next_part += 1
        return part

    def write(self, batch: pa.RecordBatch) -> None:
        """Append rows, rolling into the next part when the current one is full."""
        offset = 0
        while offset < batch.num_rows:
            if self.current is None:
                self.current = self._open_part()
            take = min(self.part_rows - self.current.rows, batch.num_rows - offset)
            whole = offset == 0 and take == batch.num_rows
            piece = batch if whole else batch.slice(offset, take)
            self.current.write(piece)
            offset += piece.num_rows
            self.rows += piece.num_rows
            if self.current.rows >= self.part_rows:
                try:
                    self._roll()
                except OSError as exc:  # the rows are in the part's journal already
                    raise EncoderFailed(exc) from exc

    def _roll(self) -> None:
        assert self.current is not None
        part, self.current = self.current, None
        self._bytes_closed += part.bytes_written
        closed = part.close()
        if closed is not None:
            self._on_closed(closed)

    def flush(self) -> bool:
        """Fsync the open part."""
        return self.current.flush() if self.current is not None else False

    def close(self) -> ClosedTable | None:
        """Close the open part (``None`` if every part is closed already)."""
        if self.current is None:
            return None
        part, self.current = self.current, None
        self._bytes_closed += part.bytes_written
        return part.close()

    def abort(self) -> None:
        """Release the open part untouched."""
        if self.current is not None:
            self.current.abort()

    def tables(self) -> Iterator[JournaledTable]:
        """The open part, if any."""
        if self.current is not None:
            yield self.current
