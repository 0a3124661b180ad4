"""The data files of an open bundle, as the writer thread sees them.

:class:`BundleFiles` owns every table of the bundle — ``scalars``, one wide table per
streamed device (``samples/<device>/``), one per device-record family and per camera's
frame receipts — each a :class:`~capa.bundle.tables.JournaledTable` (journal plus Parquet
written while recording), and the ``events.sqlite`` connection. Only the writer thread
touches it: no locks, and nothing here blocks anything but that thread.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from capa.bundle import tables
from capa.bundle.accounting import (
    SCALARS,
    Ledger,
    frames_stream,
    records_stream,
    samples_stream,
)
from capa.bundle.events import EventsDB
from capa.bundle.manifest import BUNDLE_SCHEMA_VERSION
from capa.bundle.paths import (
    DEVICE_RECORDS_DIR,
    EVENTS_FILE,
    SAMPLES_DIR,
    SCALARS_STEM,
    VIDEO_DIR,
    safe_component,
)
from capa.bundle.records import checked_frame, describe_schema, to_record_batch
from capa.bundle.tableindex import append_closed
from capa.bundle.tables import (
    REORDER_WINDOW_NS,
    ClosedTable,
    EncoderFailed,
    JournaledTable,
    PartedTable,
)
from capa.components.emissions import (
    DeviceRecords,
    EventRecord,
    FrameReceipt,
    SampleRows,
    ScalarRows,
)
from capa.errors import BundleError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BundleFiles"]

BUNDLE_SCHEMA_VERSION_TAG = str(BUNDLE_SCHEMA_VERSION).encode()


class BundleFiles:
    """Appends records to the tables of one bundle (writer thread only).

    Attributes:
        rows: rows appended to tables (frame receipts count once written).
        events: the event log connection.
        ledger: where rows appended are counted as ``written`` per device and stream.
        closed: every table file closed so far (also in the bundle's table index).
    """

    def __init__(
        self, bundle: Path, ledger: Ledger | None = None, *, utc_at_zero: str = ""
    ) -> None:
        from capa.bundle.schema import scalars_schema

        self.bundle = bundle
        self.run_id = bundle.name
        # Every file states the run's absolute time base, so a reader with only the
        # Parquet file (DuckDB, polars, no capa) can turn t_mono_ns into UTC.
        self.utc_at_zero = utc_at_zero
        self.ledger = ledger if ledger is not None else Ledger()
        self.events = EventsDB(bundle / EVENTS_FILE)
        self.closed: list[ClosedTable] = []
        self.scalars = JournaledTable(
            bundle,
            SCALARS_STEM,
            SCALARS,
            self._tagged(scalars_schema()),
            group_rows=tables.LONG_GROUP_ROWS,
            count_channels=True,
        )
        self.samples: dict[str, PartedTable] = {}
        self.device: dict[str, JournaledTable] = {}
        self.frames: dict[str, JournaledTable] = {}
        self._frame_buffers: dict[str, list[FrameReceipt]] = {}
        self._channels: dict[str, object] = {}
        self._channels_seen: bytes | None = None
        self.rows = 0

    def _tagged(self, schema: pa.Schema, **extra: str) -> pa.Schema:
        """``schema`` with the bundle's file metadata (run id, schema version, ...)."""
        meta = dict(schema.metadata or {})
        meta[b"capa.run_id"] = self.run_id.encode()
        meta[b"capa.bundle_schema_version"] = BUNDLE_SCHEMA_VERSION_TAG
        if self.utc_at_zero:
            meta[b"capa.utc_at_zero"] = self.utc_at_zero.encode()
        for key, value in extra.items():
            meta[f"capa.{key}".encode()] = value.encode()
        return schema.with_metadata(meta)

    def streams(self) -> list[JournaledTable]:
        """Every open table (a copy: safe to call from another thread)."""
        parts = [t for table in tuple(self.samples.values()) for t in table.tables()]
        return [
            self.scalars,
            *parts,
            *tuple(self.device.values()),
            *tuple(self.frames.values()),
        ]

    @property
    def bytes_written(self) -> int:
        """Journal bytes appended to every table so far (closed parts included)."""
        return (
            self.scalars.bytes_written
            + sum(t.bytes_written for t in tuple(self.samples.values()))
            + sum(t.bytes_written for t in tuple(self.device.values()))
            + sum(t.bytes_written for t in tuple(self.frames.values()))
        )

    @property
    def pending_rows(self) -> int:
        """Frame receipts buffered until the next flush."""
        return sum(len(b) for b in self._frame_buffers.values())

    def write(self, record: object) -> None:
        """Append one run record (BundleError for a record that cannot be stored)."""
        if isinstance(record, SampleRows):
            self._write_samples(record)
        elif isinstance(record, ScalarRows):
            from capa.bundle.schema import conform_scalars

            self._note_channels(record.batch)
            batch = conform_scalars(record.batch)
            self._append(self.scalars, batch, record.device)
        elif isinstance(record, DeviceRecords):
            self._write_device(record)
        elif isinstance(record, EventRecord):
            self.events.insert([record])
        elif isinstance(record, FrameReceipt):
            name = safe_component(record.device or "camera", "camera")
            self._frame_buffers.setdefault(name, []).append(checked_frame(record))

    def _note_channels(self, batch: object) -> None:
        """Keep the pipeline's ``capa.channels`` description for the scalars footer.

        The scalars file is opened before the first batch, so the channel description
        the pipeline attaches to its batches goes into the footer's key-value metadata at
        close (readers see it as schema metadata); channels of every batch are merged.
        """
        import json

        meta = getattr(getattr(batch, "schema", None), "metadata", None) or {}
        described = meta.get(b"capa.channels")
        if not described or described == self._channels_seen:
            return
        try:
            channels = json.loads(described)
        except ValueError as exc:
            raise BundleError(f"scalar rows carry capa.channels that is not JSON: {exc}") from exc
        if not isinstance(channels, dict):
            raise BundleError("scalar rows carry capa.channels that is not a JSON object")
        self._channels_seen = described
        self._channels.update(channels)
        self.scalars.encoder.footer_metadata["capa.channels"] = json.dumps(
            dict(sorted(self._channels.items())), separators=(",", ":")
        )

    def _append(
        self, table: JournaledTable | PartedTable, batch: pa.RecordBatch, device: str
    ) -> None:
        """Write a batch; it counts as written once it is in the journal."""
        try:
            table.write(batch)
        except EncoderFailed:
            self.rows += batch.num_rows
            self.ledger.written(device, table.stream, batch.num_rows)
            raise
        self.rows += batch.num_rows
        self.ledger.written(device, table.stream, batch.num_rows)

    def _note_closed(self, table: ClosedTable) -> None:
        self.closed.append(table)
        append_closed(self.bundle, table)

    def _write_samples(self, record: SampleRows) -> None:
        import pyarrow as pa

        name = safe_component(record.table or record.device, "sample table")
        batch = record.batch
        if isinstance(batch, pa.Table):
            batch = to_record_batch(batch)
        if not isinstance(batch, pa.RecordBatch):
            raise BundleError(
                f"sample rows of {name!r} must be a pyarrow RecordBatch, got {type(batch).__name__}"
            )
        table = self.samples.get(name)
        if table is None:
            if "t_mono_ns" not in batch.schema.names:
                raise BundleError(f"sample rows of {name!r} have no t_mono_ns column")
            schema = self._tagged(
                batch.schema,
                table="samples",
                device=record.device or name,
                channels=wide_channels(batch.schema),
            )
            table = PartedTable(
                self.bundle,
                f"{SAMPLES_DIR}/{name}",
                samples_stream(name),
                schema,
                on_closed=self._note_closed,
                part_values=tables.PART_VALUES,
                group_rows=tables.WIDE_GROUP_ROWS,
            )
            self.samples[name] = table
        elif not batch.schema.equals(table.schema, check_metadata=False):
            raise BundleError(
                f"sample rows of {name!r} changed schema mid-run: the first batch fixed "
                f"({describe_schema(table.schema)}), this one has "
                f"({describe_schema(batch.schema)})"
            )
        self._append(table, batch, record.device)

    def _write_device(self, record: DeviceRecords) -> None:
        family = safe_component(record.family, "device-record family")
        batch = to_record_batch(record.columns)
        stream = self.device.get(family)
        if stream is None:
            (self.bundle / DEVICE_RECORDS_DIR).mkdir(exist_ok=True)
            stream = JournaledTable(
                self.bundle,
                f"{DEVICE_RECORDS_DIR}/{family}",
                records_stream(family),
                self._tagged(batch.schema),
                group_rows=tables.LONG_GROUP_ROWS,
            )
            self.device[family] = stream
        elif not batch.schema.equals(stream.schema, check_metadata=False):
            raise BundleError(
                f"device records of {family!r} changed schema mid-run: the first batch fixed "
                f"({describe_schema(stream.schema)}), this one has "
                f"({describe_schema(batch.schema)})"
            )
        self._append(stream, batch, record.device)

    def _write_frames(self) -> None:
        import pyarrow as pa

        from capa.bundle.schema import frames_schema

        for name, buffered in self._frame_buffers.items():
            if not buffered:
                continue
            stream = self.frames.get(name)
            if stream is None:
                (self.bundle / VIDEO_DIR).mkdir(exist_ok=True)
                stream = JournaledTable(
                    self.bundle,
                    f"{VIDEO_DIR}/{name}.frames",
                    frames_stream(name),
                    self._tagged(frames_schema()),
                    group_rows=tables.LONG_GROUP_ROWS,
                    window_ns=REORDER_WINDOW_NS,
                )
                self.frames[name] = stream
            import numpy as np

            from capa import columnar  # not pyarrow.array(): it imports pandas

            batch = pa.RecordBatch.from_arrays(
                [
                    columnar.int64(np.array([f.frame_idx for f in buffered], np.int64)),
                    columnar.int64(np.array([f.t_mono_ns for f in buffered], np.int64)),
                    columnar.strings([f.t_utc for f in buffered]),
                    columnar.float64(np.array([f.capture_latency_s for f in buffered], np.float64)),
                ],
                schema=frames_schema(),
            )
            stream.write(batch)
            self.rows += batch.num_rows
            for device in {f.device for f in buffered}:
                count = sum(1 for f in buffered if f.device == device)
                self.ledger.written(device, frames_stream(name), count)
            buffered.clear()

    def discard_buffered(self) -> list[FrameReceipt]:
        """Frame receipts still buffered (never written); the buffers are emptied."""
        out = [f for buffered in self._frame_buffers.values() for f in buffered]
        for buffered in self._frame_buffers.values():
            buffered.clear()
        return out

    def flush(self) -> bool:
        """Write buffered frames, fsync every stream, commit events; whether any I/O ran."""
        self._write_frames()
        wrote = False
        for stream in self.streams():
            wrote = stream.flush() or wrote
        return self.events.commit() or wrote

    def release_tables(self) -> None:
        """Leave every open table to finalize (journal kept, Parquet in flight dropped)."""
        for stream in self.streams():
            stream.release()

    def close(self) -> list[BaseException]:
        """Close every table into its final Parquet file, commit events; the errors.

        A table that cannot be closed keeps its journal (finalize rebuilds it from there).
        """
        errors: list[BaseException] = []
        closers = [
            self.scalars.close,
            *(t.close for t in self.samples.values()),
            *(t.close for t in self.device.values()),
            *(t.close for t in self.frames.values()),
        ]
        for close in closers:
            try:
                closed = close()
                if closed is not None:
                    self._note_closed(closed)
            except Exception as exc:
                errors.append(exc)
        try:
            self.events.close()
        except Exception as exc:
            errors.append(exc)
        return errors

    def abort(self) -> None:
        """Release every file without writing another byte (the writer was abandoned)."""
        for stream in self.streams():
            with contextlib.suppress(Exception):
                stream.abort()
        for table in self.samples.values():
            with contextlib.suppress(Exception):
                table.abort()
        with contextlib.suppress(Exception):
            self.events.abort()


def wide_channels(schema: pa.Schema) -> str:
    """``capa.channels`` of a wide table: its value columns' field metadata as JSON.

    The same description the field metadata holds, at file level too: DuckDB's
    ``parquet_kv_metadata`` shows file keys but not Arrow field metadata.
    """
    import json

    described: dict[str, dict[str, str]] = {}
    for field in schema:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        if meta.get("capa.role", "value") != "value" or "capa.channel" not in meta:
            continue
        described[meta["capa.channel"]] = {
            k.removeprefix("capa."): v for k, v in meta.items() if k != "capa.channel"
        } | {"column": field.name}
    return json.dumps(described, sort_keys=True, separators=(",", ":"))
