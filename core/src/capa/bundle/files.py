"""The data files of an open bundle, as the writer thread sees them.

:class:`BundleFiles` owns the ``scalars`` stream, one stream per device-record family and
per camera's frame receipts, and the ``events.sqlite`` connection. Only the writer thread
touches it: no locks, and nothing here blocks anything but that thread.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from capa.bundle.accounting import (
    SCALARS,
    Ledger,
    frames_stream,
    records_stream,
    samples_stream,
)
from capa.bundle.events import EventsDB
from capa.bundle.inflight import InflightStream
from capa.bundle.paths import (
    DEVICE_RECORDS_DIR,
    EVENTS_FILE,
    IN_FLIGHT_SUFFIX,
    SAMPLES_DIR,
    SCALARS_STEM,
    VIDEO_DIR,
    safe_component,
)
from capa.bundle.records import checked_frame, describe_schema, to_record_batch
from capa.components.emissions import (
    DeviceRecords,
    EventRecord,
    FrameReceipt,
    SampleRows,
    ScalarRows,
)
from capa.errors import BundleError

__all__ = ["BundleFiles"]


class BundleFiles:
    """Appends records to the files of one bundle (writer thread only).

    Attributes:
        rows: rows appended to in-flight streams (frame receipts count once written).
        events: the event log connection.
        ledger: where rows appended are counted as ``written`` per device and stream.
    """

    def __init__(self, bundle: Path, ledger: Ledger | None = None) -> None:
        from capa.bundle.schema import scalars_schema

        self.bundle = bundle
        self.ledger = ledger if ledger is not None else Ledger()
        self.events = EventsDB(bundle / EVENTS_FILE)
        self.scalars = InflightStream(
            bundle / f"{SCALARS_STEM}{IN_FLIGHT_SUFFIX}", scalars_schema()
        )
        self.device: dict[str, InflightStream] = {}
        self.samples: dict[str, InflightStream] = {}
        self.frames: dict[str, InflightStream] = {}
        self._frame_buffers: dict[str, list[FrameReceipt]] = {}
        self.rows = 0

    def streams(self) -> list[InflightStream]:
        """Every open stream (a copy: safe to call from another thread)."""
        return [
            self.scalars,
            *tuple(self.samples.values()),
            *tuple(self.device.values()),
            *tuple(self.frames.values()),
        ]

    @property
    def bytes_written(self) -> int:
        """Bytes appended to every stream so far."""
        return sum(s.bytes_written for s in self.streams())

    @property
    def pending_rows(self) -> int:
        """Frame receipts buffered until the next flush."""
        return sum(len(b) for b in self._frame_buffers.values())

    def write(self, record: object) -> None:
        """Append one run record (BundleError for a record that cannot be stored)."""
        if isinstance(record, ScalarRows):
            from capa.bundle.schema import conform_scalars

            batch = conform_scalars(record.batch)
            self.scalars.write(batch)
            self.rows += batch.num_rows
            self.ledger.written(record.device, SCALARS, batch.num_rows)
        elif isinstance(record, SampleRows):
            self._write_samples(record)
        elif isinstance(record, DeviceRecords):
            self._write_device(record)
        elif isinstance(record, EventRecord):
            self.events.insert([record])
        elif isinstance(record, FrameReceipt):
            name = safe_component(record.device or "camera", "camera")
            self._frame_buffers.setdefault(name, []).append(checked_frame(record))

    # --- h/wide: the minimal wide-table branch (one in-flight part per table, which
    # finalize turns into samples/<table>/part-00000.parquet). h/tables replaces it with
    # the real part writer; keep that implementation when merging.
    def _write_samples(self, record: SampleRows) -> None:
        table = safe_component(record.table or record.device, "sample table")
        batch = record.batch
        stream = self.samples.get(table)
        if stream is None:
            folder = self.bundle / SAMPLES_DIR / table
            folder.mkdir(parents=True, exist_ok=True)
            stream = InflightStream(folder / f"part-00000{IN_FLIGHT_SUFFIX}", batch.schema)
            self.samples[table] = stream
        elif not batch.schema.equals(stream.schema, check_metadata=False):
            raise BundleError(
                f"samples of {table!r} changed schema mid-run: the first batch fixed "
                f"({describe_schema(stream.schema)}), this one has "
                f"({describe_schema(batch.schema)})"
            )
        stream.write(batch)
        self.rows += batch.num_rows
        self.ledger.written(record.device, samples_stream(table), batch.num_rows)

    def _write_device(self, record: DeviceRecords) -> None:
        family = safe_component(record.family, "device-record family")
        batch = to_record_batch(record.columns)
        stream = self.device.get(family)
        if stream is None:
            folder = self.bundle / DEVICE_RECORDS_DIR
            folder.mkdir(exist_ok=True)
            stream = InflightStream(folder / f"{family}{IN_FLIGHT_SUFFIX}", batch.schema)
            self.device[family] = stream
        elif not batch.schema.equals(stream.schema, check_metadata=False):
            raise BundleError(
                f"device records of {family!r} changed schema mid-run: the first batch fixed "
                f"({describe_schema(stream.schema)}), this one has "
                f"({describe_schema(batch.schema)})"
            )
        stream.write(batch)
        self.rows += batch.num_rows
        self.ledger.written(record.device, records_stream(family), batch.num_rows)

    def _write_frames(self) -> None:
        import numpy as np
        import pyarrow as pa

        from capa.bundle.schema import frames_schema

        for name, buffered in self._frame_buffers.items():
            if not buffered:
                continue
            stream = self.frames.get(name)
            if stream is None:
                folder = self.bundle / VIDEO_DIR
                folder.mkdir(exist_ok=True)
                path = folder / f"{name}.frames{IN_FLIGHT_SUFFIX}"
                stream = InflightStream(path, frames_schema())
                self.frames[name] = stream
            from capa import columnar  # not pyarrow.array(): it imports pandas (h/wide)

            batch = pa.RecordBatch.from_arrays(
                [
                    columnar.int64(np.array([f.frame_idx for f in buffered], np.int64)),
                    columnar.int64(np.array([f.t_mono_ns for f in buffered], np.int64)),
                    columnar.strings([f.t_utc for f in buffered]),
                    columnar.float64(np.array([f.capture_latency_s for f in buffered])),
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

    def close(self) -> list[BaseException]:
        """Close everything cleanly (end-of-stream markers, final commit); the errors."""
        errors: list[BaseException] = []
        for stream in self.streams():
            try:
                stream.close()
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
        with contextlib.suppress(Exception):
            self.events.abort()
