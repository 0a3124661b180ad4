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
    """What the saturation monitor watches."""

    queue_depth: int
    last_accept_mono_ns: int | None
    rows: int


@dataclass(frozen=True, slots=True)
class SealResult:
    """Statuses of the bundle after the session closed."""

    bundle_status: str
    integrity_status: str
    warnings: tuple[str, ...] = ()


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

        self._writer = BundleWriter.open(
            self.runs_root,
            run_id=self._requested_id,
            manifest_fields=manifest_fields,
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
            try:
                writer.submit(record, timeout=self._SUBMIT_SLICE_S)
                return
            except BundleError:
                metrics = writer.metrics()
                if metrics.error is not None or metrics.queue_depth < metrics.queue_capacity:
                    raise  # closed or failed, not merely full
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
        if self._abandoned.is_set():
            with self._dropped_lock:
                self._late_events.append(
                    EventRecord(
                        t_mono_ns=self.writer.clock.now_ns(),
                        t_utc=RunClock.utc_now_iso(),
                        kind=kind,
                        severity=EventSeverity(severity),
                        source=source,
                        message=message,
                        metadata=metadata,
                    )
                )
            return
        self.writer.emit(kind, message, severity=severity, source=source, metadata=metadata)

    def progress(self) -> WriterProgress:
        """Queue depth and the last time the writer took a record."""
        m = self.writer.metrics()
        return WriterProgress(m.queue_depth, m.last_accept_mono_ns, m.rows)

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
        if self._abandoned.is_set():
            writer.abandon(outcome.run_status, exit_reason, late_events=self._late_events)
        else:
            writer.close(outcome.run_status, exit_reason, finalize=False)
        manifest = read_manifest(writer.bundle)
        counts = {**manifest.counts, **extra.get("counts", {})}
        if self._dropped:
            counts["dropped_after_abandon"] = self._dropped
        queue_health = {**manifest.queue_health, **extra.get("queue_health", {})}
        custom = {**manifest.custom, **extra.get("custom", {})}
        merged = ("counts", "queue_health", "custom")
        updates = {k: v for k, v in extra.items() if k not in merged}
        manifest = manifest.transition(
            counts=counts, queue_health=queue_health, custom=custom, **updates
        )
        write_manifest(writer.bundle, manifest)
        result = finalize_bundle(writer.bundle)
        with contextlib.suppress(BundleError):  # the catalog is an index, rebuildable
            Catalog(self.runs_root).upsert(result.manifest, writer.bundle)
        return SealResult(
            result.manifest.bundle_status.value,
            result.manifest.integrity.status.value,
            tuple(result.warnings),
        )
