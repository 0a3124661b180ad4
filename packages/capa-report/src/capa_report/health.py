"""Device health: the manifest's accounting and counters beside the devices' error events.

Everything here is read from what the run recorded: ``counts.accounting`` (rows each
device emitted, written and dropped per table, with reasons), ``counts.devices`` (a
device's own counters: overruns, samples lost, camera drops, ...),
``queue_health.runtime.workers`` (read errors per worker) and the events of each device
(``comm_error`` and ``worker_adapter_error`` kinds, warnings, errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from capa_report.model import EventRow

__all__ = ["DeviceHealth", "device_health"]

# Counters of counts.devices.<device> that mean something was lost or went wrong.
_BAD_COUNTERS = (
    "overruns",
    "samples_lost_per_channel",
    "restarts",
    "dropped",
    "lost_uncommitted",
    "disconnects",
    "backlog_warnings",
)
_WORKER_COUNTERS = ("read_errors", "emit_errors", "stop_errors", "late_polls")


@dataclass
class DeviceHealth:
    """One device's row of the health table."""

    device: str
    emitted: int | str = "—"
    written: int | str = "—"
    dropped: int | str = "—"
    comm_errors: int = 0
    warnings: int = 0
    errors: int = 0
    counters: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _d(value: Any) -> dict[str, Any]:
    """A manifest block as a dict (a hand-made manifest may hold anything there)."""
    return value if isinstance(value, dict) else {}


def _device_of(source: str, devices: Iterable[str]) -> str | None:
    # Event sources are "<component>:<name>" (seed 003): "watlow.ezzone_pm:furnace".
    name = source.rsplit(":", 1)[-1]
    return name if name in devices else None


def _is_comm_error(ev: EventRow) -> bool:
    return "comm_error" in ev.kind or ev.kind == "worker_adapter_error"


def device_health(
    manifest: dict[str, Any], events: Sequence[EventRow]
) -> tuple[list[DeviceHealth], list[str]]:
    """Health rows per device, and run-wide notes (dropped rows, queue, loop lag)."""
    counts = _d(manifest.get("counts"))
    accounting = _d(counts.get("accounting"))
    per_device_acc = _d(accounting.get("devices"))
    device_counters = _d(counts.get("devices"))
    recorded = _d(manifest.get("recording")).get("devices") or []
    names = sorted({*recorded, *per_device_acc, *device_counters})
    rows = {name: DeviceHealth(name) for name in names}
    for name, tables in per_device_acc.items():
        _add_accounting(rows[name], _d(tables))
    for name, values in device_counters.items():
        _add_counters(rows[name], _d(values))
    workers = _d(_d(_d(manifest.get("queue_health")).get("runtime")).get("workers"))
    for worker in map(_d, workers.values()):
        for name in worker.get("devices") or []:
            if name in rows:
                _add_worker(rows[name], worker)
    _add_events(rows, events)
    return list(rows.values()), _notes(manifest, counts, accounting)


def _add_accounting(row: DeviceHealth, tables: dict[str, Any]) -> None:
    emitted = written = dropped = 0
    reasons: dict[str, int] = {}
    for table in map(_d, tables.values()):
        emitted += int(table.get("emitted", 0))
        written += int(table.get("written", 0))
        for reason, n in _d(table.get("dropped")).items():
            reasons[reason] = reasons.get(reason, 0) + int(n)
            dropped += int(n)
    row.emitted, row.written, row.dropped = emitted, written, dropped
    if dropped:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        row.problems.append(f"{dropped} rows dropped ({detail})")
    if emitted != written + dropped:
        row.problems.append(f"{emitted} rows emitted but {written} written and {dropped} dropped")


def _add_counters(row: DeviceHealth, values: dict[str, Any]) -> None:
    for key, value in sorted(values.items()):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        row.counters.append(f"{key}={value}")
        if key in _BAD_COUNTERS and isinstance(value, int | float) and value:
            row.problems.append(f"{key} = {value}")
        if key == "health" and value != "ok":
            row.problems.append(f"health {value}")


def _add_worker(row: DeviceHealth, worker: dict[str, Any]) -> None:
    for key in _WORKER_COUNTERS:
        value = worker.get(key)
        if value:
            row.counters.append(f"{key}={value}")
            if key != "late_polls":  # a late poll is a timing note, not a fault
                row.problems.append(f"{key} = {value}")
    if worker.get("abandoned"):
        row.problems.append("worker abandoned (did not stop in time)")


def _add_events(rows: dict[str, DeviceHealth], events: Sequence[EventRow]) -> None:
    for ev in events:
        device = _device_of(ev.source, rows)
        if device is None:
            continue
        row = rows[device]
        if _is_comm_error(ev):
            row.comm_errors += 1
        if ev.severity == "warning":
            row.warnings += 1
        elif ev.severity in ("error", "critical"):
            row.errors += 1
    for row in rows.values():
        if row.comm_errors:
            row.problems.append(f"{row.comm_errors} communication error events")
        if row.errors:
            row.problems.append(f"{row.errors} error events")


def _notes(
    manifest: dict[str, Any], counts: dict[str, Any], accounting: dict[str, Any]
) -> list[str]:
    notes: list[str] = []
    dropped = _d(counts.get("dropped"))
    rows = int(dropped.get("rows") or 0)
    by_reason = _d(dropped.get("by_reason"))
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(by_reason.items()))
    notes.append(f"rows dropped in the run: {rows}" + (f" ({detail})" if detail else ""))
    if counts.get("unmapped_batches"):
        notes.append(f"batches no channel was mapped to: {counts['unmapped_batches']}")
    if accounting:
        exact = "exact" if accounting.get("exact") else "not exact"
        notes.append(f"sample accounting: {accounting.get('status', '?')} ({exact})")
    queue = _d(manifest.get("queue_health"))
    if queue:
        notes.append(
            f"writer queue: high water {queue.get('queue_high_water')} of "
            f"{queue.get('queue_capacity')}, {queue.get('dropped_rows', 0)} rows dropped, "
            f"longest flush {queue.get('max_flush_s')} s"
            + (f", error: {queue['error']}" if queue.get("error") else "")
        )
        lag = _d(_d(queue.get("runtime")).get("loop_lag"))
        if lag:
            notes.append(
                f"event-loop lag: p99 {lag.get('p99_ms')} ms, max {lag.get('max_ms')} ms, "
                f"{lag.get('warnings', 0)} warnings over {lag.get('warn_ms')} ms"
            )
    return notes
