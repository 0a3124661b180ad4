"""Watchdogs of a running conductor: event-loop lag and writer saturation."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from capa.clock import RunClock
from capa.components.emissions import EventRecord, EventSeverity
from capa.runtime.session import RunSession

__all__ = [
    "WRITER_RESOURCE",
    "LoopLagMeter",
    "MonitorEvents",
    "SaturationTrip",
    "watch_saturation",
    "watch_writer_failure",
]

WRITER_RESOURCE = "bundle_writer"
"""``resource_id`` of a saturation trip when no device producer was blocked on the writer."""


class LoopLagMeter:
    """Measures how late a 20 Hz heartbeat wakes up on the run's main loop.

    Lag there delays stop requests, step transitions and command dispatch, so its p50 /
    p99 / max go into the manifest, and a beat later than ``warn_ms`` is reported.
    """

    PERIOD_S = 0.05

    def __init__(self, warn_ms: float, window: int = 72_000) -> None:
        self.warn_ms = warn_ms
        self._lags_ms: deque[float] = deque(maxlen=window)  # one hour at 20 Hz
        self.max_ms = 0.0
        self.warnings = 0

    async def run(self, on_warning: Any = None) -> None:
        """Beat until cancelled."""
        expected = time.monotonic() + self.PERIOD_S
        while True:
            await anyio.sleep(max(0.0, expected - time.monotonic()))
            lag_ms = max(0.0, (time.monotonic() - expected) * 1e3)
            self._lags_ms.append(lag_ms)
            self.max_ms = max(self.max_ms, lag_ms)
            if lag_ms > self.warn_ms:
                self.warnings += 1
                if on_warning is not None:
                    on_warning(lag_ms)
            expected += self.PERIOD_S
            expected = max(expected, time.monotonic())  # no burst after a long stall

    def summary(self) -> dict[str, Any]:
        """p50 / p99 / max lag in ms and the number of beats and warnings."""
        lags = sorted(self._lags_ms)
        if not lags:
            return {"beats": 0}

        def pct(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 3)

        return {
            "beats": len(lags),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(self.max_ms, 3),
            "warn_ms": self.warn_ms,
            "warnings": self.warnings,
        }


@dataclass(frozen=True, slots=True)
class SaturationTrip:
    """Why the saturation monitor ended the run."""

    blocked_s: float
    queue_depth: int
    rows_written: int
    blocked_resources: tuple[tuple[str, float], ...] = ()
    """``(resource_id, seconds)`` of the producers blocked on the writer, longest first."""

    @property
    def resource_id(self) -> str:
        """The resource the deadline names: the longest-blocked producer, else the writer."""
        return self.blocked_resources[0][0] if self.blocked_resources else WRITER_RESOURCE

    def metadata(self) -> dict[str, Any]:
        """Event metadata (seed 003 decodes ``$.resource_id`` and ``$.blocked_s``)."""
        return {
            "resource_id": self.resource_id,
            "blocked_s": round(self.blocked_s, 3),
            "queue_depth": self.queue_depth,
            "rows_written": self.rows_written,
            "blocked_resources": {rid: round(s, 3) for rid, s in self.blocked_resources},
        }


async def watch_saturation(
    session: RunSession,
    deadline_s: float,
    poll_s: float = 0.25,
    blocked: Callable[[], Sequence[tuple[str, float]]] | None = None,
    on_stall: Callable[[float, int], None] | None = None,
) -> SaturationTrip:
    """Return once the writer has had work queued but accepted none for ``deadline_s``.

    An idle writer (nothing queued) is never saturated, however long it waits.
    ``blocked`` lists the producers waiting on the writer at that moment
    (:meth:`~capa.runtime.pool.WorkerPool.blocked_resources`); the trip names them.
    ``on_stall(stalled_s, queue_depth)`` is called once per stall when it has lasted half
    the deadline: the warning before the trip (a stall that clears is only warned about).
    """
    stalled_since: float | None = None
    warned = False
    last_seen: int | None = None
    while True:
        await anyio.sleep(poll_s)
        progress = session.progress()
        now = time.monotonic()
        moved = progress.last_accept_mono_ns != last_seen
        last_seen = progress.last_accept_mono_ns
        if progress.queue_depth == 0 or moved:
            stalled_since = None
            warned = False
            continue
        if stalled_since is None:
            stalled_since = now
            continue
        if not warned and on_stall is not None and now - stalled_since >= deadline_s / 2:
            warned = True
            on_stall(now - stalled_since, progress.queue_depth)
        if now - stalled_since >= deadline_s:
            producers = tuple(blocked()) if blocked is not None else ()
            return SaturationTrip(
                now - stalled_since, progress.queue_depth, progress.rows, producers
            )


async def watch_writer_failure(session: RunSession, poll_s: float = 0.25) -> str:
    """Return the writer's error as soon as it reports one (disk full, I/O error).

    A session whose progress does not carry an error (a custom test session) never trips.
    """
    while True:
        error = getattr(session.progress(), "error", None)
        if error is not None:
            return str(error)
        await anyio.sleep(poll_s)


class MonitorEvents:
    """Warnings the watchdogs raise on the event loop, recorded as events off it.

    A watchdog's callback runs on the run's event loop, which must never block; recording
    an event can block (the writer's queue is full, often the very thing being warned
    about). So :meth:`warn` only queues the event, stamped with the moment it was
    observed, and :meth:`run` hands queued events to the session (``submit``, which
    blocks while the writer is behind) from a worker thread.
    :meth:`flush` at finalize records whatever is still queued, so no warning is lost.
    """

    def __init__(self, session: RunSession, clock: RunClock, poll_s: float = 0.25) -> None:
        self._session = session
        self._clock = clock
        self._poll_s = poll_s
        self._pending: deque[EventRecord] = deque()
        self._drain_lock = threading.Lock()

    def warn(self, kind: str, message: str, metadata: Mapping[str, Any]) -> None:
        """Queue a ``warning`` event stamped now (never blocks; safe on the event loop)."""
        self._pending.append(
            EventRecord(
                t_mono_ns=self._clock.now_ns(),
                t_utc=RunClock.utc_now_iso(),
                kind=kind,
                severity=EventSeverity.WARNING,
                source="conductor",
                message=message,
                metadata=dict(metadata),
            )
        )

    @property
    def pending(self) -> int:
        """Events queued and not yet handed to the session."""
        return len(self._pending)

    async def run(self) -> None:
        """Hand queued events to the session until cancelled."""
        while True:
            await anyio.sleep(self._poll_s)
            # abandon_on_cancel: a stuck writer must not hold up the end of the run. The
            # session's submit returns once the writer is abandoned, keeping the event
            # for the close (events are never dropped there).
            await anyio.to_thread.run_sync(self._record_pending, abandon_on_cancel=True)

    async def flush(self) -> None:
        """Record every event still queued (at finalize, before the session closes)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._record_pending)

    def _record_pending(self) -> None:
        # One drainer at a time: flush() waits here for a thread that run() left behind
        # (its event is then in the session before the session closes).
        with self._drain_lock:
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                record = self._pending.popleft()
            except IndexError:  # empty (or drained by the other caller meanwhile)
                return
            try:
                self._session.submit(record)
            except Exception as exc:  # storage refused it: say so rather than lose it
                sys.stderr.write(
                    f"capa: could not record event {record.kind} ({record.message}): {exc}\n"
                )
