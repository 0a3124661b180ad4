"""The data path: adapter emissions → channels → calibration → bundle writer + registry.

Runs on the emitting worker's thread. A sample batch of a *streamed* device becomes one
:class:`~capa.SampleRows` batch of its wide table (``samples/<device>/``, see
:mod:`capa.runtime.wide`); one of a *polled* device becomes one long ``scalars`` batch
(:class:`~capa.ScalarRows`). Either takes a handful of numpy/Arrow operations per channel
whatever the batch length — no Python object per sample — and the registry gets one
update per channel per batch. Arrays are built with :mod:`capa.columnar`, never
``pyarrow.array()``, which would import pandas.

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
import pyarrow as pa
import pyarrow.compute  # used by dictionary casts: import now, not mid-run

from capa import columnar
from capa.bundle.accounting import SCALARS, Ledger, record_rows, samples_stream, stream_of
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
    SampleRows,
    SampleStatus,
    ScalarRows,
)
from capa.errors import EmissionError
from capa.runtime.channel_meta import BUNDLE_SCHEMA_VERSION, channels_json
from capa.runtime.channels import ChannelRegistry
from capa.runtime.plan import ChannelPlan, DerivedPlan, DevicePlan
from capa.runtime.wide import ChannelColumns, WideTable

if TYPE_CHECKING:
    import numpy.typing as npt

    from capa.config.expressions import Expression
    from capa.runtime.safety import SafetyMonitor

__all__ = ["ChannelPipeline", "PipelineStats", "RecordingPlan"]

Submit = Callable[[RunRecord], None]


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What a run records: channels (``scalars`` or wide tables), devices' native records.

    Attributes:
        policy: ``procedure_default`` (the procedure may narrow it) or ``record_all``.
        channels: channel names recorded (in ``scalars`` or their device's wide table).
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
    source: str  # the scalars "source" value: "<device>.<field>", or "derived"


@dataclass
class _Derived:
    """A derived channel as the pipeline evaluates it."""

    plan: DerivedPlan
    expression: Expression
    binding: _Binding
    lock: threading.Lock  # window state: batches of its devices arrive on their threads


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
        ledger: Ledger | None = None,
        derived: Iterable[DerivedPlan] = (),
        monitor: SafetyMonitor | None = None,
        streamed: Iterable[str] = (),
    ) -> None:
        """Build the run's data path.

        ``streamed`` names the devices whose adapter instance streams hardware-clocked
        blocks (``Adapter.sampling()`` is ``streamed``): they are recorded in wide
        ``samples/<device>`` tables whose schemas are fixed here; every other device's
        channels go to ``scalars``.
        """
        self._submit = submit
        self.ledger = ledger if ledger is not None else Ledger()
        """Counts ``emitted`` rows and the drops the pipeline causes (see accounting)."""
        # After seal(), nothing more reaches the writer: rows are counted ``after_stop``.
        self._sealed = False
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self._registry = registry
        self._clock = clock
        self._recording = recording
        self._adapter_ids = {d.name: d.adapter.id for d in devices}
        self._monitor = monitor if monitor is not None and monitor.active else None
        chans = list(channels)
        derived_plans = list(derived)
        # Dictionaries fixed for the whole run, so every batch of the in-flight stream
        # shares them and finalize never has to unify dictionaries.
        names = [c.name for c in chans] + [d.name for d in derived_plans]
        self._channel_dict = columnar.strings(names)
        units = sorted({c.unit for c in chans} | {d.unit for d in derived_plans})
        self._unit_dict = columnar.strings(units)
        self._status_values = list(STATUS_VALUES)
        self._status_dict = columnar.strings(self._status_values)
        self._status_lock = threading.Lock()
        self._bindings: dict[str, list[_Binding]] = {}
        for code, ch in enumerate(chans):
            self._bindings.setdefault(ch.device, []).append(
                _Binding(ch.field, code, ch, units.index(ch.unit), f"{ch.device}.{ch.field}")
            )
        self._derived = self._plan_derived(chans, derived_plans, names, units)
        self.streamed = frozenset(streamed)
        self.wide = self._plan_wide(chans)
        """The wide table of each streamed device (only those that record something)."""
        self._schema = self._scalars_schema(chans, derived_plans)
        self.stats = PipelineStats()

    def _plan_wide(self, chans: list[ChannelPlan]) -> dict[str, WideTable]:
        """A fixed-schema wide table per streamed device with recorded channels."""
        recorded = self._recording.channels
        out: dict[str, WideTable] = {}
        for device in sorted(self.streamed):
            mine = [c for c in chans if c.device == device and c.name in recorded]
            derived = [d.plan for d in self._derived.get(device, ()) if d.plan.name in recorded]
            table = WideTable(device, mine, derived)
            if table:
                out[device] = table
        return out

    def _scalars_schema(self, chans: list[ChannelPlan], plans: list[DerivedPlan]) -> pa.Schema:
        """``scalars_schema()`` with the description of every channel it may hold.

        ``capa.channels`` (schema metadata, and the ``channel`` field's metadata): JSON of
        the recorded channels of polled devices and the derived channels polled devices
        trigger (see ``core/docs/bundle-schema.md``).
        """
        recorded = self._recording.channels
        polled = {c.device for c in chans} - self.streamed
        in_scalars: list[ChannelPlan | DerivedPlan] = [
            c for c in chans if c.device in polled and c.name in recorded
        ]
        seen = {c.name for c in in_scalars}
        for device in sorted(polled):
            for d in self._derived.get(device, ()):
                if d.plan.name in recorded and d.plan.name not in seen:
                    seen.add(d.plan.name)
                    in_scalars.append(d.plan)
        described = channels_json(in_scalars).encode()
        base = scalars_schema()
        index = base.get_field_index("channel")
        channel = base.field(index).with_metadata({b"capa.channels": described})
        return base.set(index, channel).with_metadata(
            {
                **(base.metadata or {}),
                b"capa.channels": described,
                b"capa.bundle_schema_version": str(BUNDLE_SCHEMA_VERSION).encode(),
            }
        )

    def _plan_derived(
        self,
        chans: list[ChannelPlan],
        plans: list[DerivedPlan],
        names: list[str],
        units: list[str],
    ) -> dict[str, list[_Derived]]:
        """Derived channels by the devices whose batches trigger them, in evaluation order.

        A derived channel is evaluated when a batch of a device that (directly or through
        another derived channel) supplies one of its inputs arrives; inputs from other
        devices are taken at their latest values.
        """
        from capa.config.expressions import parse_expression

        unit_of = {c.name: c.unit for c in chans} | {p.name: p.unit for p in plans}
        devices_of: dict[str, set[str]] = {c.name: {c.device} for c in chans}
        by_device: dict[str, list[_Derived]] = {}
        for d in plans:
            expression = parse_expression(
                d.expression,
                channels={k: v for k, v in unit_of.items() if k != d.name},
                constants=d.constants,
            )
            pseudo = ChannelPlan(name=d.name, device="derived", field=d.name, unit=d.unit)
            entry = _Derived(
                d,
                expression,
                _Binding(d.name, names.index(d.name), pseudo, units.index(d.unit), "derived"),
                threading.Lock(),
            )
            devices_of[d.name] = set().union(*(devices_of.get(i, set()) for i in d.inputs))
            for device in sorted(devices_of[d.name]):
                by_device.setdefault(device, []).append(entry)
        return by_device

    # ------------------------------------------------------------------ entry point
    def process(self, device: str, emission: Emission) -> None:
        """Route one emission of ``device`` (called on the device's worker thread).

        Raises:
            EmissionError: the emission cannot be recorded (its rows are counted as
                dropped, ``invalid_emission``); the worker reports it as a device failure.
            BundleError: the writer refused the record (counted ``writer_unavailable``).
        """
        with self._inflight_lock:
            self._inflight += 1
        try:
            if self._sealed:
                self._after_stop(device, emission)
            elif isinstance(emission, SampleBatch):
                self._samples(device, emission)
            elif isinstance(emission, DeviceRecords):
                if device in self._recording.devices:
                    record = dataclasses.replace(emission, device=device)
                    self._account_and_submit(device, record, record_rows(emission.columns))
            elif isinstance(emission, DeviceEvent):
                self._submit(self.device_event(device, emission))
            elif isinstance(emission, FrameReceipt):
                self._account_and_submit(device, dataclasses.replace(emission, device=device), 1)
            else:
                raise EmissionError(
                    f"{device}: emitted a {type(emission).__name__}, which is not an emission "
                    "(SampleBatch, DeviceRecords, DeviceEvent or FrameReceipt)"
                )
        finally:
            with self._inflight_lock:
                self._inflight -= 1
                if self._inflight == 0:
                    self._inflight_lock.notify_all()

    def seal(self, timeout_s: float) -> bool:
        """Stop passing records on; emissions from now on are counted ``after_stop``.

        Waits up to ``timeout_s`` for calls already under way to hand their record over,
        so nothing reaches the writer after the run's accounting is closed. Returns
        whether they all finished (a worker blocked for longer is reported by its grace).
        """
        with self._inflight_lock:
            self._sealed = True
            return self._inflight_lock.wait_for(lambda: self._inflight == 0, timeout_s)

    def _account_and_submit(self, device: str, record: RunRecord, rows: int) -> None:
        stream = stream_of(record)
        assert stream is not None
        self.ledger.emitted(device, stream, rows)
        try:
            self._submit(record)
        except BaseException:
            self.ledger.dropped(device, stream, rows, "writer_unavailable")
            raise

    def _after_stop(self, device: str, emission: Emission) -> None:
        if isinstance(emission, SampleBatch):
            stream, rows = self._sample_rows(device, emission)
            if rows:
                self.ledger.emitted_and_dropped(device, stream, rows, "after_stop")
        elif isinstance(emission, DeviceRecords):
            if device in self._recording.devices:
                records = stream_of(dataclasses.replace(emission, device=device))
                assert records is not None
                rows = record_rows(emission.columns)
                self.ledger.emitted_and_dropped(device, records, rows, "after_stop")
        elif isinstance(emission, FrameReceipt):
            frames = stream_of(dataclasses.replace(emission, device=device))
            assert frames is not None
            self.ledger.emitted_and_dropped(device, frames, 1, "after_stop")

    def _sample_rows(self, device: str, batch: SampleBatch) -> tuple[str, int]:
        """The stream a batch goes to and the rows it makes there (before derived rows).

        A wide table gets one row per time point (whatever the channels); ``scalars`` one
        row per time point and recorded channel. A malformed time column counts as one
        time point, so a rejected batch is still counted (``invalid_emission``).
        """
        table = self.wide.get(device)
        if table is not None:
            if not any(b.field in batch.values for b in self._bindings.get(device, ())):
                return samples_stream(device), 0
            return samples_stream(device), _time_points(batch.t_mono_ns)
        if device in self.streamed:
            return samples_stream(device), 0  # a streamed device recording nothing
        k = sum(
            1
            for b in self._bindings.get(device, ())
            if b.field in batch.values and b.channel.name in self._recording.channels
        )
        if not k:
            return SCALARS, 0
        return SCALARS, _time_points(batch.t_mono_ns) * k

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
        stream, rows = self._sample_rows(device, batch)
        if rows:
            self.ledger.emitted(device, stream, rows)
        try:
            record = self._build(device, batch, bindings)
        except Exception as exc:
            if rows:
                self.ledger.dropped(device, stream, rows, "invalid_emission")
            if isinstance(exc, EmissionError):
                raise
            raise EmissionError(
                f"{device}: sample batch could not be recorded: {type(exc).__name__}: {exc}"
            ) from exc
        if record is None:
            return
        # Derived channels add rows of their own to a long batch: count them. (In a wide
        # batch they are columns: the row count is the time points counted above.)
        extra = record.batch.num_rows - rows
        if extra > 0:
            self.ledger.emitted(device, stream, extra)
            rows += extra
        try:
            self._submit(record)
        except BaseException:
            self.ledger.dropped(device, stream, rows, "writer_unavailable")
            raise

    def _build(
        self, device: str, batch: SampleBatch, bindings: list[_Binding]
    ) -> ScalarRows | SampleRows | None:
        """Validate and calibrate a batch; update the registry; the rows to record."""
        t = _times(device, batch.t_mono_ns)
        n = len(t)
        if n == 0:
            return None
        converted = []
        for b in bindings:
            raw = _column(device, b.field, batch.values[b.field], n)
            value = np.asarray(b.channel.to_value(raw), dtype=np.float64)
            if value.shape != (n,):
                raise EmissionError(
                    f"{device}: field {b.field!r}: calibration of channel "
                    f"{b.channel.name!r} returned shape {value.shape}, expected ({n},)"
                )
            converted.append((b, raw, value))
        # Only once every field is valid: a rejected batch leaves no partial update.
        recorded: list[tuple[_Binding, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
        for b, raw, value in converted:
            self._registry.update(b.channel.name, int(t[-1]), float(value[-1]))
            if b.channel.name in self._recording.channels:
                recorded.append((b, raw, value))
        derived = self._evaluate_derived(device, t, {b.channel.name: v for b, _, v in converted})
        for b, value in derived:
            if b.channel.name in self._recording.channels:
                recorded.append((b, value, value))
        if self._monitor is not None:
            # Before the record is queued: a saturated writer must not blind the alarms.
            self._monitor.device_alive(device, int(t[-1]))
            for b, value in [*((b, v) for b, _, v in converted), *derived]:
                self._monitor.observe(b.channel.name, t, value)
        table = self.wide.get(device)
        if table is not None:
            supplied = {
                b.channel.name: ChannelColumns(
                    value,
                    raw if b.channel.keep_raw else None,
                    self._status_codes(batch.status, b.field, n, device),
                )
                for b, raw, value in recorded
            }
            return SampleRows(table.batch(t, supplied, self._status_dict), device, device)
        if not recorded or device in self.streamed:
            return None
        return ScalarRows(self._scalar_batch(device, t, recorded, batch.status), device)

    def _evaluate_derived(
        self, device: str, t: npt.NDArray[np.int64], values: dict[str, npt.NDArray[np.float64]]
    ) -> list[tuple[_Binding, npt.NDArray[np.float64]]]:
        """Derived channels this batch triggers, evaluated at its sample times."""
        out: list[tuple[_Binding, npt.NDArray[np.float64]]] = []
        n = len(t)
        for d in self._derived.get(device, ()):
            if not any(name in values for name in d.plan.inputs):
                continue  # this batch carries none of its inputs
            env: dict[str, Any] = {}
            for name in d.plan.inputs:
                if name in values:
                    env[name] = values[name]
                else:
                    latest = self._registry.latest(name)
                    if latest is None:
                        break  # an input has no value yet: nothing to compute
                    env[name] = latest
            else:
                with d.lock:
                    result = d.expression.evaluate(env)
                value = np.array(np.broadcast_to(result, (n,)), dtype=np.float64)
                values[d.plan.name] = value
                self._registry.update(d.plan.name, int(t[-1]), float(value[-1]))
                out.append((d.binding, value))
        return out

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
        status_codes = interleave(
            [self._status_codes(status, b.field, n, device) for b, _, _ in recorded]
        )
        sources = columnar.dictionary(
            np.tile(np.arange(k, dtype=np.int32), n),
            columnar.strings([b.source for b, _, _ in recorded]),
        ).cast(pa.string())
        columns = [
            columnar.int64(np.repeat(t, k)),
            columnar.dictionary(codes, self._channel_dict),
            columnar.float64(values),
            columnar.float64(raw, valid=~raw_mask),
            columnar.dictionary(unit_codes, self._unit_dict),
            columnar.dictionary(status_codes, self._status_dict),
            sources,
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self._schema)

    def _status_codes(
        self, status: SampleStatus | Mapping[str, Any], field: str, n: int, device: str = ""
    ) -> npt.NDArray[np.int32]:
        if isinstance(status, str):
            return np.full(n, self._status_code(status), dtype=np.int32)
        per_field = status.get(field, SampleStatus.OK)
        if isinstance(per_field, str):
            return np.full(n, self._status_code(per_field), dtype=np.int32)
        # An array of statuses: map the few distinct values, not every row. A numpy string
        # array is uniqued as it is (no Python object per sample); a list goes through str.
        arr = np.asarray(per_field)
        if arr.shape != (n,):
            raise EmissionError(
                f"{device}: status of field {field!r} has shape {arr.shape}; expected one status "
                f"or ({n},) statuses"
            )
        if arr.dtype.kind != "U":
            arr = arr.astype(object).astype(str)
        uniq, inverse = np.unique(arr, return_inverse=True)
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
                    self._status_dict = columnar.strings(self._status_values)
        return self._status_values.index(value)


def _time_points(column: Any) -> int:
    """Samples in a batch's time column; 1 when it is malformed (the batch is rejected)."""
    try:
        return int(np.shape(column)[0]) if np.ndim(column) else 1
    except (TypeError, ValueError, IndexError):
        return 1


def _times(device: str, column: Any) -> npt.NDArray[np.int64]:
    """The batch's time column as 1-D int64, or an :class:`EmissionError` naming it."""
    try:
        t = np.asarray(column, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EmissionError(f"{device}: t_mono_ns is not integer nanoseconds ({exc})") from exc
    if t.ndim != 1:
        raise EmissionError(
            f"{device}: t_mono_ns must be a 1-D array (one time per sample), "
            f"got a {t.ndim}-d array of shape {t.shape}"
        )
    return t


def _column(device: str, field: str, column: Any, n: int) -> npt.NDArray[np.float64]:
    """A field's values as 1-D float64 of length ``n``, or an :class:`EmissionError`."""
    try:
        raw = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EmissionError(f"{device}: field {field!r} is not numeric ({exc})") from exc
    if raw.ndim != 1:
        kind = "a scalar (0-d)" if raw.ndim == 0 else f"a {raw.ndim}-d array"
        raise EmissionError(
            f"{device}: field {field!r} is {kind}; a SampleBatch needs a 1-D column "
            f"with one value per time ({n})"
        )
    if raw.shape[0] != n:
        raise EmissionError(f"{device}: field {field!r} has {raw.shape[0]} values for {n} times")
    return raw
