"""Run sessions: the per-run resources the conductor records into.

:class:`RunSession` is what the conductor needs from storage; :class:`RealRunSession`
provides it with the bundle writer (:mod:`capa.bundle`). Tests may pass their own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from capa.bundle.accounting import Ledger, record_rows, stream_of
from capa.clock import RunClock
from capa.components.emissions import (
    DeviceRecords,
    EventRecord,
    EventSeverity,
    RunRecord,
    ScalarRows,
)
from capa.errors import BundleError
from capa.runtime.state import RunOutcome

if TYPE_CHECKING:
    from capa.bundle.writer import BundleWriter

__all__ = ["RealRunSession", "RunSession", "SealResult", "WriterProgress"]


@dataclass(frozen=True, slots=True)
class WriterProgress:
    """What the saturation and writer-failure monitors watch."""

    queue_depth: int
    last_accept_mono_ns: int | None
    rows: int
    error: str | None = None
    """Why the writer stopped writing (disk full, I/O error); ``None`` while it works."""


@dataclass(frozen=True, slots=True)
class SealResult:
    """Statuses of the bundle after the session closed."""

    bundle_status: str
    integrity_status: str
    warnings: tuple[str, ...] = ()
    run_status: str | None = None
    """The run status recorded, when storage changed it (a writer that failed while
    closing turns ``completed`` into ``crashed``); ``None`` when as requested."""
    exit_reason: str | None = None
    """The exit reason recorded, when ``run_status`` is set."""


class RunSession(Protocol):
    """Storage for one run, as the conductor uses it."""

    @property
    def run_id(self) -> str:
        """The run's id (bundle directory name)."""

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory, once open."""

    @property
    def log(self) -> Any:
        """Structlog logger bound to the run (``run.log``)."""

    @property
    def ledger(self) -> Ledger:
        """The run's sample accounting (the pipeline counts ``emitted`` in it).

        Optional for sessions of other makes: the conductor uses it when present.
        """

    def open(self, clock: RunClock, manifest_fields: Mapping[str, Any]) -> None:
        """Create the bundle; the run is visible in the catalog from here on."""

    def submit(self, record: RunRecord) -> None:
        """Store a record; blocks while storage is behind (backpressure)."""

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = EventSeverity.INFO,
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event."""

    def progress(self) -> WriterProgress:
        """Writer progress for the saturation monitor."""

    def abandon_writer(self) -> None:
        """Give up on a writer that stopped making progress; producers stop blocking."""

    def child(self) -> RunSession:
        """A new session for a child run recorded while this one is open."""

    def close(self, outcome: RunOutcome, exit_reason: str, extra: Mapping[str, Any]) -> SealResult:
        """Record how the run ended, merge ``extra`` manifest blocks, and seal."""


class RealRunSession:
    """A run session backed by a :class:`~capa.bundle.writer.BundleWriter`.

    Args:
        runs_root: where the bundle is created.
        config_files: files copied into the bundle's ``config/``.
        config_path: the experiment file, for the crash checkpoint.
        flush_interval_s: the longest time data stays un-fsynced.
        run_id: fixed run id (tests); generated from the clock otherwise.
        queue_size: the writer queue's bound.
        nested: a child run (batch iteration) inside a run this process records.
    """

    # How long one blocked submit waits before re-checking whether the writer was
    # abandoned; short enough that a worker stuck on backpressure notices quickly.
    _SUBMIT_SLICE_S = 0.25

    def __init__(
        self,
        runs_root: Path,
        *,
        config_files: Mapping[str, Path | bytes] | None = None,
        config_path: Path | None = None,
        flush_interval_s: float = 1.0,
        run_id: str | None = None,
        queue_size: int | None = None,
        nested: bool = False,
    ) -> None:
        self.runs_root = runs_root
        self._config_files = dict(config_files or {})
        self._config_path = config_path
        self._flush_interval_s = flush_interval_s
        self._requested_id = run_id
        self._queue_size = queue_size
        self._nested = nested
        self._writer: BundleWriter | None = None
        self._abandoned = threading.Event()
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._late_events: list[EventRecord] = []
        self.stale_message: str | None = None
        self._ledger = Ledger()

    @property
    def ledger(self) -> Ledger:
        """Rows emitted / written / dropped per device and stream, shared with the writer."""
        return self._ledger

    @property
    def writer(self) -> BundleWriter:
        """The open bundle writer."""
        if self._writer is None:
            raise BundleError("run session is not open")
        return self._writer

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.writer.run_id if self._writer else (self._requested_id or "")

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory, once open."""
        return self._writer.bundle if self._writer else None

    @property
    def log(self) -> Any:
        """The run's ``run.log`` logger."""
        return self.writer.log

    def open(self, clock: RunClock, manifest_fields: Mapping[str, Any]) -> None:
        """Create the bundle directory, manifest, catalog row and crash checkpoint."""
        from capa.bundle.writer import DEFAULT_QUEUE_SIZE, BundleWriter
        from capa.runtime.diagnostics import RUNTIME_VERSION

        # Seed 004: the bundle records which runtime revision wrote it (``engine_version``
        # is the seed's name for it, ``runtime_version`` the one next to capa's version).
        capa_block = {
            **dict(manifest_fields.get("capa") or {}),
            "runtime_version": RUNTIME_VERSION,
            "engine_version": RUNTIME_VERSION,
        }
        fields = {**manifest_fields, "capa": capa_block}
        self._writer = BundleWriter.open(
            self.runs_root,
            run_id=self._requested_id,
            manifest_fields=fields,
            config_files=self._config_files,
            flush_interval_s=self._flush_interval_s,
            queue_size=self._queue_size or DEFAULT_QUEUE_SIZE,
            clock=clock,
            config_path=str(self._config_path) if self._config_path else None,
            nested=self._nested,
            ledger=self._ledger,
        )
        if self._writer.stale_run is not None:
            self.stale_message = self._writer.stale_run.message

    def submit(self, record: RunRecord) -> None:
        """Queue a record, blocking while the writer is behind — unless abandoned."""
        writer = self.writer
        while not self._abandoned.is_set():
            if writer.failed is not None:
                # The disk is full (or failing): the record cannot be stored. Events are
                # kept for the close (few, and they explain what happened); data is
                # counted as dropped. The conductor sees the failure and stops the run,
                # so the producer must not die of it first.
                if isinstance(record, EventRecord):
                    with self._dropped_lock:
                        self._late_events.append(record)
                else:
                    writer.note_dropped(record, "writer_failed")
                return
            try:
                writer.submit(record, timeout=self._SUBMIT_SLICE_S)
                return
            except BundleError:
                metrics = writer.metrics()
                if metrics.error is not None:
                    continue  # counted as writer_failed above
                if metrics.queue_depth < metrics.queue_capacity:
                    raise  # closed, not merely full
        if isinstance(record, EventRecord):
            # Abandoned while this event waited: keep it for the close, as emit() does.
            with self._dropped_lock:
                self._late_events.append(record)
            return
        with self._dropped_lock:
            self._dropped += 1
        stream = stream_of(record)
        if stream is not None:
            rows = (
                int(record.batch.num_rows)
                if isinstance(record, ScalarRows)
                else record_rows(record.columns)
                if isinstance(record, DeviceRecords)
                else 1
            )
            self._ledger.dropped(getattr(record, "device", ""), stream, rows, "writer_abandoned")

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = EventSeverity.INFO,
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event.

        Once the writer is abandoned, events are kept and written straight into
        ``events.sqlite`` when the session closes.
        """
        writer = self.writer
        if not self._abandoned.is_set() and writer.failed is None:
            try:
                writer.emit(kind, message, severity=severity, source=source, metadata=metadata)
                return
            except BundleError:
                if writer.failed is None:
                    raise  # closed, or a bad severity: the caller's mistake
        # The writer cannot take it (abandoned, or failed: a full disk): keep the event
        # and write it through a connection of its own when the session closes.
        with self._dropped_lock:
            self._late_events.append(
                EventRecord(
                    t_mono_ns=writer.clock.now_ns(),
                    t_utc=RunClock.utc_now_iso(),
                    kind=kind,
                    severity=EventSeverity(severity),
                    source=source,
                    message=message,
                    metadata=metadata,
                )
            )

    def progress(self) -> WriterProgress:
        """Queue depth and the last time the writer took a record."""
        m = self.writer.metrics()
        return WriterProgress(m.queue_depth, m.last_accept_mono_ns, m.rows, m.error)

    def abandon_writer(self) -> None:
        """Stop feeding a stalled writer; records submitted from now on are dropped."""
        self._abandoned.set()

    def child(self) -> RealRunSession:
        """A session for a child run (same runs root and config files), for batches."""
        return RealRunSession(
            self.runs_root,
            config_files=self._config_files,
            config_path=self._config_path,
            flush_interval_s=self._flush_interval_s,
            queue_size=self._queue_size,
            nested=True,
        )

    def close(self, outcome: RunOutcome, exit_reason: str, extra: Mapping[str, Any]) -> SealResult:
        """Stop the writer, record the outcome and ``extra`` blocks, finalize, index."""
        from capa.bundle.catalog import Catalog
        from capa.bundle.finalize import finalize_bundle
        from capa.bundle.manifest import read_manifest, write_manifest

        writer = self.writer
        late_kept: list[dict[str, Any]] = []
        if self._abandoned.is_set():
            writer.abandon(outcome.run_status, exit_reason, late_events=self._late_events)
        else:
            writer.close(outcome.run_status, exit_reason, finalize=False)
            late_kept = _store_late_events(writer.bundle, self._late_events)
        manifest = read_manifest(writer.bundle)
        counts = {**manifest.counts, **extra.get("counts", {})}
        if self._dropped:
            counts["dropped_after_abandon"] = self._dropped
        queue_health = {**manifest.queue_health, **extra.get("queue_health", {})}
        custom = {**manifest.custom, **extra.get("custom", {})}
        if late_kept:
            custom["late_events"] = [*custom.get("late_events", []), *late_kept]
        merged = ("counts", "queue_health", "custom")
        updates = {k: v for k, v in extra.items() if k not in merged}
        manifest = manifest.transition(
            counts=counts, queue_health=queue_health, custom=custom, **updates
        )
        write_manifest(writer.bundle, manifest)
        result = finalize_bundle(writer.bundle)
        with contextlib.suppress(BundleError):  # the catalog is an index, rebuildable
            Catalog(self.runs_root).upsert(result.manifest, writer.bundle)
        recorded = result.manifest.run_status.value
        changed = recorded != outcome.run_status
        return SealResult(
            result.manifest.bundle_status.value,
            result.manifest.integrity.status.value,
            tuple(result.warnings),
            run_status=recorded if changed else None,
            exit_reason=result.manifest.exit_reason if changed else None,
        )


def _store_late_events(bundle: Path, events: list[EventRecord]) -> list[dict[str, Any]]:
    """Append events the writer could not take; those that fail too are returned as dicts.

    Returned events go into ``manifest.custom.late_events``, so none is lost silently.
    """
    import sqlite3

    from capa.bundle.events import append_events
    from capa.bundle.paths import EVENTS_FILE

    if not events:
        return []
    try:
        append_events(bundle / EVENTS_FILE, events)
    except (sqlite3.Error, OSError):
        return [
            {
                "t_mono_ns": e.t_mono_ns,
                "t_utc": e.t_utc,
                "kind": e.kind,
                "severity": str(e.severity),
                "source": e.source,
                "message": e.message,
                "metadata": dict(e.metadata) if e.metadata is not None else None,
            }
            for e in events
        ]
    return []
