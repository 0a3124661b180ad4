"""Values that flow from adapters into a run, and from a run into its sinks.

Adapters *emit*: columnar sample batches, native device records, device events and frame
receipts. The runtime maps sample fields to channels, calibrates them (vectorised) and hands
sinks *run records*: scalar rows in the bundle's long-form schema, device records, event
records (the row shape of ``events.sqlite``, seed 003) and frame receipts.

Array-valued attributes are typed ``Any`` on purpose: adapters use numpy or pyarrow arrays
(block devices) or short Python lists (pollers), and core does not import either library
at start-up.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeviceEvent",
    "DeviceRecords",
    "Emission",
    "EventRecord",
    "EventSeverity",
    "FrameReceipt",
    "RunRecord",
    "SampleBatch",
    "SampleRows",
    "SampleStatus",
    "ScalarRows",
]


class SampleStatus(enum.StrEnum):
    """Quality of a sample. Anything but ``ok`` is recorded, never dropped."""

    OK = "ok"
    UNDERRANGE = "underrange"
    OVERLOAD = "overload"
    SENSOR_FAIL = "sensor_fail"
    COMM_ERROR = "comm_error"
    UNSTABLE = "unstable"


class EventSeverity(enum.StrEnum):
    """Severities allowed in ``events.sqlite`` (seed 003): exactly these three."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Samples of one device: a shared time column and one column per field.

    Attributes:
        t_mono_ns: 1-D int64 run-clock times, one per row.
        values: field name -> 1-D float column of the same length.
        status: one status for the whole batch, or field name -> column of statuses.
    """

    t_mono_ns: Any
    values: Mapping[str, Any]
    status: SampleStatus | Mapping[str, Any] = SampleStatus.OK

    def __len__(self) -> int:
        return len(self.t_mono_ns)


@dataclass(frozen=True, slots=True)
class DeviceRecords:
    """Native rows as the device reported them, for ``device_records/<family>.parquet``.

    Attributes:
        family: file stem inside ``device_records/`` (usually the adapter family).
        columns: column name -> 1-D column, or a ``pyarrow.RecordBatch``. The first batch
            of a family fixes its schema for the run.
        device: the emitting device, filled in by the runtime (for the sample accounting).
    """

    family: str
    columns: Any
    device: str = ""


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something a device wants in the event log (a fault, a reconnect, a refusal)."""

    kind: str
    message: str
    severity: EventSeverity = EventSeverity.INFO
    metadata: Mapping[str, Any] = field(default_factory=dict)
    t_mono_ns: int | None = None


@dataclass(frozen=True, slots=True)
class FrameReceipt:
    """One captured video frame, for ``video/<camera>.frames.parquet``.

    ``device`` is filled in by the runtime (an adapter need not know its own name).
    """

    frame_idx: int
    t_mono_ns: int
    t_utc: str
    capture_latency_s: float
    device: str = ""


Emission = SampleBatch | DeviceRecords | DeviceEvent | FrameReceipt
"""Anything an adapter hands the runtime."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the ``events`` table, exactly the columns of seed 003."""

    t_mono_ns: int
    t_utc: str
    kind: str
    severity: EventSeverity
    source: str
    message: str
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ScalarRows:
    """Calibrated channel samples in the bundle's long-form ``scalars`` schema.

    Attributes:
        batch: a ``pyarrow.RecordBatch`` with ``t_mono_ns``, ``channel``, ``value``,
            ``raw_value``, ``unit``, ``status`` and ``source_field`` columns.
        device: the device the rows came from (for the sample accounting; may be empty
            for rows not produced by a device).
    """

    batch: Any
    device: str = ""


@dataclass(frozen=True, slots=True)
class SampleRows:
    """Calibrated samples of one hardware-clocked device in its *wide* table.

    One row per sample-clock tick: ``t_mono_ns`` plus one ``float64`` column per channel
    (``<channel>.raw`` and ``<channel>.status`` beside it where recorded), with the
    channel metadata in each field's metadata (see ``core/docs/bundle-schema.md``).

    Attributes:
        batch: a ``pyarrow.RecordBatch`` in the table's fixed schema.
        device: the device the rows came from (for the sample accounting).
        table: the wide table the rows belong to (``samples/<table>/``); the device name.
    """

    batch: Any
    device: str = ""
    table: str = ""


RunRecord = ScalarRows | SampleRows | DeviceRecords | EventRecord | FrameReceipt
"""Anything the runtime hands a sink."""
