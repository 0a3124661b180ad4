"""Giving up on a stuck writer thread: :meth:`BundleWriter.abandon`'s work.

Kept apart from :mod:`capa.bundle.writer` because it touches everything the writer owns
from *another* thread (the one that gave up), with its own rules: nothing queued is
written, the thread is told to release its files untouched, and events go through a
connection of their own.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from capa.bundle.events import append_events
from capa.bundle.manifest import RunStatus, read_manifest, write_manifest
from capa.bundle.metrics import summary
from capa.bundle.paths import EVENTS_FILE
from capa.bundle.recovery import clear_active
from capa.bundle.space import release_reserve
from capa.clock import RunClock
from capa.components.emissions import EventRecord, EventSeverity
from capa.errors import BundleError

if TYPE_CHECKING:
    from capa.bundle.writer import BundleWriter

__all__ = ["abandon_writer"]

SOURCE: Final = "capa.bundle"


def abandon_writer(
    writer: BundleWriter,
    run_status: RunStatus | str,
    exit_reason: str,
    *,
    late_events: Iterable[EventRecord],
    join_timeout_s: float,
    stop: object,
) -> None:
    """See :meth:`capa.bundle.writer.BundleWriter.abandon` (``stop``: the queue's sentinel)."""
    status = RunStatus(run_status)
    if status is RunStatus.RUNNING:
        raise BundleError("abandon() needs a terminal run status, not 'running'")
    with writer._close_lock:
        if writer._closing:
            return
        writer._closing = True
        writer._abandoned.set()
        while True:  # whatever is still queued will never be written
            try:
                item = writer._queue.get_nowait()
            except queue.Empty:
                break
            if item is not stop:
                writer._drop(item, "abandoned")
        with contextlib.suppress(queue.Full):
            writer._queue.put_nowait(stop)  # wakes a thread that is merely waiting
        writer._thread.join(join_timeout_s)
        stuck = writer._thread.is_alive()
        release_reserve(writer.bundle)  # room for the events and manifest written below
        # A write may have been under way when the writer was given up on: the
        # counters bound the files but need not match them exactly.
        writer._final_checkpoint(exact=False)
        metrics = writer.metrics()
        notice = EventRecord(
            t_mono_ns=writer.clock.now_ns(),
            t_utc=RunClock.utc_now_iso(),
            kind="bundle.writer_abandoned",
            severity=EventSeverity.ERROR,
            source=SOURCE,
            message=f"bundle writer abandoned ({exit_reason or status.value}); "
            f"{metrics.dropped_rows} queued rows dropped",
            metadata={"thread_stuck": stuck, "rows_durable": metrics.rows_durable},
        )
        events = [*late_events, notice]
        manifest = read_manifest(writer.bundle)
        custom = dict(manifest.custom)
        try:
            append_events(writer.bundle / EVENTS_FILE, events)
        except sqlite3.Error as exc:
            writer.log.error("bundle.late_events_kept_in_manifest", error=str(exc))
            custom["late_events"] = [_event_dict(e) for e in events]
        writer.log.error("bundle.writer_abandoned", thread_stuck=stuck, **summary(metrics))
        writer._runlog.close()
        counts = dict(manifest.counts)
        counts["dropped"] = writer._drops.counts()
        health = metrics.as_queue_health(writer.flush_interval_s)
        health["abandoned"] = True
        write_manifest(
            writer.bundle,
            manifest.transition(
                run_status=status,
                exit_reason=exit_reason,
                ended_utc=RunClock.utc_now_iso(),
                queue_health=health,
                counts=counts,
                custom=custom,
            ),
        )
        if writer._catalog is not None:
            with contextlib.suppress(BundleError):
                writer._catalog.upsert(read_manifest(writer.bundle), writer.bundle)
        clear_active(writer.runs_root, writer.run_id)


def _event_dict(event: EventRecord) -> dict[str, Any]:
    return {
        "t_mono_ns": event.t_mono_ns,
        "t_utc": event.t_utc,
        "kind": event.kind,
        "severity": str(event.severity),
        "source": event.source,
        "message": event.message,
        "metadata": dict(event.metadata) if event.metadata is not None else None,
    }
