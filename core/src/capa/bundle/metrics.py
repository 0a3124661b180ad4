"""Progress figures of the bundle writer (for the saturation monitor and the manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WriterMetrics", "summary"]


@dataclass(frozen=True)
class WriterMetrics:
    """A snapshot of the writer's progress, for the saturation monitor and the manifest.

    The writer is stuck (saturated) when ``queue_depth > 0`` and ``last_accept_mono_ns``
    has not moved for the deadline; an empty queue with an old ``last_accept_mono_ns``
    only means nothing was produced.

    Attributes:
        queue_depth: records waiting in the queue now.
        queue_capacity: the queue's bound.
        queue_high_water: the largest depth seen.
        last_accept_mono_ns: ``time.monotonic_ns()`` when the writer last took a record
            off the queue (``None`` before the first) — the progress signal.
        last_flush_mono_ns: ``time.monotonic_ns()`` of the last completed flush.
        records: records taken off the queue.
        rows: rows appended to the in-flight streams.
        rows_durable: rows covered by the last completed fsync.
        bytes: bytes appended to the in-flight streams.
        flushes: flushes that made something durable.
        max_flush_s: the longest flush (fsyncs plus event commit).
        events: event rows inserted.
        dropped_rows: rows refused or lost (schema mismatch, writer failure).
        error: why the writer stopped, if it failed.
    """

    queue_depth: int
    queue_capacity: int
    queue_high_water: int
    last_accept_mono_ns: int | None
    last_flush_mono_ns: int | None
    records: int
    rows: int
    rows_durable: int
    bytes: int
    flushes: int
    max_flush_s: float
    events: int
    dropped_rows: int
    error: str | None

    def as_queue_health(self, flush_interval_s: float) -> dict[str, Any]:
        """The ``manifest.queue_health`` block (no host-specific clock readings)."""
        data = asdict(self)
        data.pop("last_accept_mono_ns")
        data.pop("last_flush_mono_ns")
        data["flush_interval_s"] = flush_interval_s
        return data


def summary(metrics: WriterMetrics) -> dict[str, Any]:
    """The few figures ``run.log`` lines about closing or abandoning a writer carry."""
    return {
        "rows": metrics.rows,
        "bytes": metrics.bytes,
        "flushes": metrics.flushes,
        "queue_high_water": metrics.queue_high_water,
        "dropped_rows": metrics.dropped_rows,
    }
