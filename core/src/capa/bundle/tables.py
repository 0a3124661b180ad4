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
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from capa.bundle.atomic import fsync_dir
from capa.bundle.encoder import HashingSink, ParquetEncoder
from capa.bundle.inflight import InflightStream
from capa.bundle.paths import IN_FLIGHT_SUFFIX
from capa.bundle.trash import discard

if TYPE_CHECKING:
    import pyarrow as pa

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


class EncoderFailed(Exception):
    """The Parquet side of a table failed after its batch reached the journal."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


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
