"""The console's view of a run: a bounded, droppable bridge and an observing session.

Acquisition never waits for the console. :class:`ObservedSession` wraps the run's real
:class:`~capa.runtime.RunSession`: every record goes to the bundle writer *first*
(unchanged, with its backpressure), and only then is a reference offered to the
:class:`DisplayBridge`, which never blocks — when the console falls behind, the oldest
display items are dropped and counted. A slow browser therefore costs display frames,
never samples.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import capa

__all__ = ["DisplayBridge", "EventView", "ObservedSession"]


@dataclass(frozen=True, slots=True)
class EventView:
    """An event as the console shows it (from ``emit`` or an adapter's event record)."""

    kind: str
    message: str
    severity: str
    source: str
    t_mono_ns: int | None
    t_utc: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the page."""
        return {
            "kind": self.kind,
            "message": self.message,
            "severity": self.severity,
            "source": self.source,
            "t_s": None if self.t_mono_ns is None else self.t_mono_ns / 1e9,
            "t_utc": self.t_utc,
            "metadata": _jsonable(self.metadata),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class DisplayBridge:
    """A bounded hand-off from acquisition threads to the console; never blocks a producer.

    Sample batches and events are held apart: a flood of samples the console cannot
    keep up with pushes out older *samples*, never the (far rarer) events, so the event
    feed and the health counts built from events stay complete.

    Args:
        capacity: sample batches held at most; beyond it the oldest is dropped and counted.
        event_capacity: events held at most (dropped and counted the same way).
    """

    def __init__(self, capacity: int = 512, event_capacity: int = 4096) -> None:
        self.capacity = capacity
        self.event_capacity = event_capacity
        self._items: deque[Any] = deque()
        self._events: deque[Any] = deque()
        # A plain lock held for an append: producers on several worker threads.
        self._lock = threading.Lock()
        self.offered = 0
        self.dropped = 0
        self.events_dropped = 0

    def offer(self, item: Any) -> None:
        """Hand a sample batch to the console (any thread). Drops the oldest when full."""
        with self._lock:
            self.offered += 1
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)

    def offer_event(self, event: Any) -> None:
        """Hand an event to the console (any thread). Drops the oldest event when full."""
        with self._lock:
            if len(self._events) >= self.event_capacity:
                self._events.popleft()
                self.events_dropped += 1
            self._events.append(event)

    def take_all(self) -> list[Any]:
        """Everything waiting: events first, then sample batches, each oldest first."""
        with self._lock:
            items = [*self._events, *self._items]
            self._events.clear()
            self._items.clear()
        return items


class ObservedSession:
    """A :class:`~capa.runtime.RunSession` that shows the console what the real one records.

    Every call is delegated to ``inner`` unchanged; ``submit`` and ``emit`` additionally
    offer the record (after the writer took it) to ``bridge``.
    """

    def __init__(self, inner: Any, bridge: DisplayBridge) -> None:
        self.inner = inner
        self.bridge = bridge

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.inner.run_id)

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory once open."""
        path: Path | None = self.inner.bundle_path
        return path

    @property
    def log(self) -> Any:
        """The run's logger."""
        return self.inner.log

    @property
    def ledger(self) -> Any:
        """The run's sample accounting (the pipeline counts ``emitted`` rows into it)."""
        return self.inner.ledger

    @property
    def stale_message(self) -> str | None:
        """A notice about a stale run found when the bundle opened (RealRunSession)."""
        message: str | None = getattr(self.inner, "stale_message", None)
        return message

    def open(self, clock: capa.RunClock, manifest_fields: Mapping[str, Any]) -> None:
        """Create the bundle."""
        self.inner.open(clock, manifest_fields)

    def submit(self, record: capa.RunRecord) -> None:
        """Store ``record`` (blocking as the writer requires), then show it."""
        self.inner.submit(record)
        if isinstance(record, capa.ScalarRows | capa.SampleRows):
            self.bridge.offer(record)
        elif isinstance(record, capa.EventRecord):
            self.bridge.offer_event(record)

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: capa.EventSeverity | str = "info",
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event, then show it."""
        self.inner.emit(kind, message, severity=severity, source=source, metadata=metadata)
        t_mono_ns = None
        with contextlib.suppress(Exception):  # a session without a run clock: no time
            t_mono_ns = int(self.inner.writer.clock.now_ns())
        self.bridge.offer_event(
            EventView(
                kind=kind,
                message=message,
                severity=str(severity),
                source=source,
                t_mono_ns=t_mono_ns,
                t_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                metadata=dict(metadata or {}),
            )
        )

    def progress(self) -> Any:
        """Writer progress (queue depth, rows)."""
        return self.inner.progress()

    def metrics(self) -> Any:
        """The bundle writer's metrics, or ``None`` before the bundle opens."""
        writer = getattr(self.inner, "writer", None) if self.bundle_path is not None else None
        return writer.metrics() if writer is not None else None

    def abandon_writer(self) -> None:
        """Give up on a stalled writer."""
        self.inner.abandon_writer()

    def child(self) -> Any:
        """A session for a child run (observed as well)."""
        return ObservedSession(self.inner.child(), self.bridge)

    def close(self, outcome: Any, exit_reason: str, extra: Mapping[str, Any]) -> Any:
        """Seal the bundle."""
        return self.inner.close(outcome, exit_reason, extra)
