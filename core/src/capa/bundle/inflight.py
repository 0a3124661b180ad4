"""Append-only Arrow IPC stream files (``*.in-flight.arrows``) and their recovery.

While a run records, each table of the bundle is one Arrow IPC *stream*: a schema message
followed by record batches, each batch self-delimiting. :class:`InflightStream` appends
batches and makes them durable on :meth:`~InflightStream.flush` (``fsync``), which the
writer calls at least once per flush interval, so a hard kill loses at most the batches
written since the last flush. :class:`JournalReader` reads back every complete batch of
such a file, one at a time (memory: one batch), and stops at the first torn or corrupt
one — the tail a kill can leave; :func:`recover_batches` collects them in a list (small
files and tests only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["InflightStream", "JournalReader", "Recovered", "recover_batches"]


class InflightStream:
    """One append-only Arrow IPC stream file, owned by the writer thread.

    Args:
        path: the ``*.in-flight.arrows`` file; must not exist yet.
        schema: schema of every batch written to it.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow as pa

        self.path = path
        self.schema = schema
        # O_EXCL: two writers must never append to one file.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        # pyarrow's OSFile is unbuffered: every batch is in the kernel once written, and
        # the fsync on our own descriptor of the same file makes it durable.
        self._sink = pa.OSFile(str(path), "ab")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self._bytes = int(self._sink.tell())
        self.rows = 0
        self.batches = 0
        self._dirty = True  # the schema message itself still needs an fsync
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """Bytes appended so far (schema message included); safe to read from any thread."""
        return self._bytes

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (not yet durable: see :meth:`flush`)."""
        self._writer.write_batch(batch)
        self._bytes = int(self._sink.tell())
        self.rows += batch.num_rows
        self.batches += 1
        self._dirty = True

    def flush(self) -> bool:
        """Make everything appended so far durable; return whether there was anything."""
        if not self._dirty or self._closed:
            return False
        self._sink.flush()
        os.fsync(self._fd)
        self._dirty = False
        return True

    def abort(self) -> None:
        """Close the file without writing anything more (not even the end marker)."""
        if self._closed:
            return
        self._closed = True
        self._sink.close()
        os.close(self._fd)

    def close(self) -> None:
        """Write the end-of-stream marker, fsync and close (idempotent)."""
        if self._closed:
            return
        try:
            self._writer.close()
            self._bytes = int(self._sink.tell())
            self._sink.flush()
            os.fsync(self._fd)
        finally:
            self._closed = True
            self._sink.close()
            os.close(self._fd)


@dataclass
class Recovered:
    """What :func:`recover_batches` could read from an in-flight file.

    Attributes:
        schema: the stream's schema, or ``None`` when even that was torn.
        batches: every complete, valid batch in file order.
        rows: total rows in ``batches``.
        good_bytes: length of the readable prefix of the file.
        file_bytes: size of the file.
        problem: why reading stopped early (``None`` for a clean stream end).
    """

    schema: pa.Schema | None
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    good_bytes: int = 0
    file_bytes: int = 0
    problem: str | None = None

    @property
    def torn_bytes(self) -> int:
        """Bytes after the last complete batch (dropped by finalize)."""
        return self.file_bytes - self.good_bytes


class JournalReader:
    """Iterate the complete, valid batches of an in-flight stream; note where it stopped.

    Reads the file sequentially through ordinary reads (no memory map), holding one batch
    at a time. Each batch is fully validated (offsets, dictionary indices, UTF-8) because
    Arrow IPC carries no checksum: a corrupt message must end recovery, not crash a later
    reader. After iteration, :attr:`problem` says why reading stopped early (``None`` for
    a clean end) and :attr:`good_bytes` how much of the file was readable.
    """

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = path
        self.file_bytes = path.stat().st_size
        self.schema: pa.Schema | None = None
        self.rows = 0
        self.batches = 0
        self.good_bytes = 0
        self.problem: str | None = None
        self._reader: pa.ipc.RecordBatchStreamReader | None = None
        self._source: pa.NativeFile | None = None
        if self.file_bytes == 0:
            self.problem = "file is empty (no schema written)"
            return
        self._source = pa.OSFile(str(path), "r")
        try:
            self._reader = pa.ipc.open_stream(self._source)
        except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError) as exc:
            self.problem = f"unreadable schema: {exc}"
            self._source.close()
            return
        self.schema = self._reader.schema
        self.good_bytes = int(self._source.tell())

    @property
    def torn_bytes(self) -> int:
        """Bytes after the last complete batch (dropped by finalize)."""
        return self.file_bytes - self.good_bytes

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        reader, source = self._reader, self._source
        if reader is None or source is None:
            return
        self._reader = None  # one pass
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    if int(source.tell()) < self.file_bytes:
                        self.problem = "data after the end-of-stream marker"
                    else:
                        self.good_bytes = self.file_bytes
                    break
                except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
                    self.problem = f"torn or corrupt batch after {self.rows} rows: {exc}"
                    break
                try:
                    batch.validate(full=True)
                except (pa.ArrowException, ValueError) as exc:
                    self.problem = f"corrupt batch after {self.rows} rows: {exc}"
                    break
                self.rows += batch.num_rows
                self.batches += 1
                self.good_bytes = int(source.tell())
                yield batch
        finally:
            source.close()
        if self.problem is None and self.good_bytes < self.file_bytes:
            self.problem = "stream ends without its end-of-stream marker"


def recover_batches(path: Path) -> Recovered:
    """Every complete batch of an in-flight stream in a list (see :class:`JournalReader`).

    Holds the whole file in memory: for small files and tests; finalize streams instead.
    """
    reader = JournalReader(path)
    result = Recovered(reader.schema, file_bytes=reader.file_bytes)
    result.batches = list(reader)
    result.rows = reader.rows
    result.good_bytes = reader.good_bytes
    result.problem = reader.problem
    return result
