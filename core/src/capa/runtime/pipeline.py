"""The data path: adapter emissions → channels → calibration → bundle writer + registry.

Runs on the emitting worker's thread. A sample batch becomes one ``scalars`` record batch
in a handful of numpy/Arrow operations whatever its length — no Python object per sample —
and the registry gets one update per channel per batch.

numpy and pyarrow are imported at module level on purpose: this module is loaded only by
``capa run`` (never by ``capa --help``), and a first-batch import on a worker thread would
hold the GIL long enough to delay every other device's sampling.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.ma  # used by pa.array(mask=...): import now, not mid-run
import pyarrow as pa
import pyarrow.compute  # used by dictionary casts: import now, not mid-run

from capa.bundle.schema import STATUS_VALUES, scalars_schema
from capa.clock import RunClock
from capa.components.emissions import (
    DeviceEvent,
    DeviceRecords,
    Emission,
    EventRecord,
    EventSeverity,
    FrameReceipt,
    RunRecord,
    SampleBatch,
    SampleStatus,
    ScalarRows,
)
from capa.runtime.channels import ChannelRegistry
from capa.runtime.plan import ChannelPlan, DevicePlan

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["ChannelPipeline", "PipelineStats", "RecordingPlan"]

Submit = Callable[[RunRecord], None]


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What a run records: channels into ``scalars``, devices' native records.

    Attributes:
        policy: ``procedure_default`` (the procedure may narrow it) or ``record_all``.
        channels: channel names written to ``scalars``.
        devices: devices whose native records are written to ``device_records/``.
    """

    policy: str
    channels: frozenset[str]
    devices: frozenset[str]

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``recording`` block."""
        return {
            "policy": self.policy,
            "channels": sorted(self.channels),
            "devices": sorted(self.devices),
        }


@dataclass(slots=True)
class PipelineStats:
    """Batches that mapped to no channel, for the manifest's ``counts``.

    Rows per channel are counted by finalize from the files themselves.
    """

    unmapped_batches: int = 0


@dataclass(frozen=True, slots=True)
class _Binding:
    field: str
    code: int  # index of the channel name in the scalars "channel" dictionary
    channel: ChannelPlan
    unit_code: int


class ChannelPipeline:
    """Maps device fields to channels and hands finished rows to the writer."""

    def __init__(
        self,
        *,
        devices: Iterable[DevicePlan],
        channels: Iterable[ChannelPlan],
        recording: RecordingPlan,
        registry: ChannelRegistry,
        submit: Submit,
        clock: RunClock,
    ) -> None:
        self._submit = submit
        self._registry = registry
        self._clock = clock
        self._recording = recording
        self._adapter_ids = {d.name: d.adapter.id for d in devices}
        chans = list(channels)
        self._schema = scalars_schema()
        # Dictionaries fixed for the whole run, so every batch of the in-flight stream
        # shares them and finalize never has to unify dictionaries.
        self._channel_dict = pa.array([c.name for c in chans], pa.string())
        units = sorted({c.unit for c in chans})
        self._unit_dict = pa.array(units, pa.string())
        self._status_values = list(STATUS_VALUES)
        self._status_dict = pa.array(self._status_values, pa.string())
        self._status_lock = threading.Lock()
        self._bindings: dict[str, list[_Binding]] = {}
        for code, ch in enumerate(chans):
            self._bindings.setdefault(ch.device, []).append(
                _Binding(ch.field, code, ch, units.index(ch.unit))
            )
        self.stats = PipelineStats()

    # ------------------------------------------------------------------ entry point
    def process(self, device: str, emission: Emission) -> None:
        """Route one emission of ``device`` (called on the device's worker thread)."""
        if isinstance(emission, SampleBatch):
            self._samples(device, emission)
        elif isinstance(emission, DeviceRecords):
            if device in self._recording.devices:
                self._submit(emission)
        elif isinstance(emission, DeviceEvent):
            self._submit(self.device_event(device, emission))
        elif isinstance(emission, FrameReceipt):
            self._submit(dataclasses.replace(emission, device=device))
        else:  # pragma: no cover - the Emission union is closed
            raise TypeError(f"{device}: unknown emission {type(emission).__name__}")

    def device_event(self, device: str, event: DeviceEvent) -> EventRecord:
        """An adapter's event as an ``events.sqlite`` row (source ``adapter:device``)."""
        t = event.t_mono_ns if event.t_mono_ns is not None else self._clock.now_ns()
        return EventRecord(
            t_mono_ns=t,
            t_utc=RunClock.utc_now_iso(),
            kind=event.kind,
            severity=EventSeverity(event.severity),
            source=f"{self._adapter_ids.get(device, 'device')}:{device}",
            message=event.message,
            metadata=dict(event.metadata) or None,
        )

    # ------------------------------------------------------------------ samples
    def _samples(self, device: str, batch: SampleBatch) -> None:
        bindings = [b for b in self._bindings.get(device, ()) if b.field in batch.values]
        if not bindings:
            self.stats.unmapped_batches += 1
            return
        t = np.asarray(batch.t_mono_ns, dtype=np.int64)
        n = len(t)
        if n == 0:
            return
        recorded: list[tuple[_Binding, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
        for b in bindings:
            raw = np.asarray(batch.values[b.field], dtype=np.float64)
            value = np.asarray(b.channel.to_value(raw), dtype=np.float64)
            self._registry.update(b.channel.name, int(t[-1]), float(value[-1]))
            if b.channel.name in self._recording.channels:
                recorded.append((b, raw, value))
        if recorded:
            self._submit(ScalarRows(self._scalar_batch(device, t, recorded, batch.status)))

    def _scalar_batch(
        self,
        device: str,
        t: npt.NDArray[np.int64],
        recorded: list[tuple[_Binding, npt.NDArray[np.float64], npt.NDArray[np.float64]]],
        status: SampleStatus | Mapping[str, Any],
    ) -> pa.RecordBatch:
        # Time-major rows (sample 0 of every channel, then sample 1, ...): each batch is
        # already sorted by t_mono_ns, so finalize only merges devices, never re-sorts.
        n, k = len(t), len(recorded)

        def interleave(columns: list[Any]) -> Any:
            return np.column_stack(columns).ravel()

        codes = np.tile(np.array([b.code for b, _, _ in recorded], dtype=np.int32), n)
        unit_codes = np.tile(np.array([b.unit_code for b, _, _ in recorded], np.int32), n)
        values = interleave([v for _, _, v in recorded])
        raw = interleave([r if b.channel.keep_raw else np.full(n, np.nan) for b, r, _ in recorded])
        raw_mask = np.tile(np.array([not b.channel.keep_raw for b, _, _ in recorded]), n)
        status_codes = interleave([self._status_codes(status, b.field, n) for b, _, _ in recorded])
        sources = pa.DictionaryArray.from_arrays(
            pa.array(np.tile(np.arange(k, dtype=np.int32), n)),
            pa.array([f"{device}.{b.field}" for b, _, _ in recorded], pa.string()),
        ).cast(pa.string())
        columns = [
            pa.array(np.repeat(t, k)),
            pa.DictionaryArray.from_arrays(pa.array(codes), self._channel_dict),
            pa.array(values),
            pa.array(raw, mask=raw_mask),
            pa.DictionaryArray.from_arrays(pa.array(unit_codes), self._unit_dict),
            pa.DictionaryArray.from_arrays(pa.array(status_codes), self._status_dict),
            sources,
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self._schema)

    def _status_codes(
        self, status: SampleStatus | Mapping[str, Any], field: str, n: int
    ) -> npt.NDArray[np.int32]:
        if isinstance(status, str):
            return np.full(n, self._status_code(status), dtype=np.int32)
        per_field = status.get(field, SampleStatus.OK)
        if isinstance(per_field, str):
            return np.full(n, self._status_code(per_field), dtype=np.int32)
        # An array of statuses: map the few distinct values, not every row.
        arr = np.asarray(per_field, dtype=object)
        uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
        lut = np.array([self._status_code(u) for u in uniq], dtype=np.int32)
        return lut[inverse]

    def _status_code(self, status: str) -> int:
        value = str(status)
        if value not in self._status_values:
            # An adapter-specific status: extend the dictionary rather than lose it. The
            # lock: several worker threads may meet new statuses at once.
            with self._status_lock:
                if value not in self._status_values:
                    self._status_values.append(value)
                    self._status_dict = pa.array(self._status_values, pa.string())
        return self._status_values.index(value)
