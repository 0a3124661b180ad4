"""The bundle writer: one thread per run that owns every file of the bundle.

Usage by the runtime (ARCHITECTURE.md 5, 6)::

    writer = BundleWriter.open(
        runs_root,
        manifest_fields={"operator": {...}, "sample": {...}, "procedure": {...},
                         "tags": [...], "custom": {...}, "plugins": [...]},
        config_files={"experiment.yaml": path, "rig.toml": path},
        clock=run_clock,
    )
    writer.submit(ScalarRows(batch))        # blocks while the queue is full: backpressure
    writer.submit(DeviceRecords("watlow", {...}))
    writer.submit(EventRecord(...))         # or writer.emit(kind, message, ...)
    writer.submit(FrameReceipt(...))
    writer.try_submit(record)                # never blocks (False when the queue is full)
    writer.metrics()                         # for the saturation monitor
    result = writer.close("completed", "")   # drain, fsync, finalize -> FinalizeResult
    # or, when the saturation monitor gives up on a stalled writer:
    writer.abandon("crashed", "saturation_deadline", late_events=[...])
    finalize_bundle(writer.bundle)

Records go through a bounded :class:`queue.Queue` to the writer thread, which appends them
to Arrow IPC streams (``scalars``, ``device_records/<family>``, ``video/<camera>.frames``),
inserts events into ``events.sqlite`` and, at least every ``flush_interval_s``, fsyncs the
streams and commits the events — so a hard kill loses at most about one flush interval.
Per-batch work is columnar (vectorised casts); nothing creates a Python object per sample.

``submit`` blocking is the backpressure the saturation monitor watches: if
:attr:`WriterMetrics.last_accept_mono_ns` stops moving for ``saturation_deadline_s`` the
runtime declares the writer stuck. A record the writer cannot store (scalar rows not in
the ``scalars`` schema, a device-record batch whose schema differs from that family's
first batch) is dropped, counted in ``counts.dropped`` and reported as an ``error`` event
(``bundle.record_rejected``); it never corrupts a file. An I/O failure stops the writer:
later ``submit`` calls raise :class:`~capa.errors.BundleError`, queued records are counted
as dropped, and ``close`` still records what reached disk. The drop and rejection
bookkeeping is :mod:`capa.bundle.drops`; giving up on a stuck thread, :mod:`capa.bundle.abandon`.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from capa.bundle.abandon import abandon_writer
from capa.bundle.accounting import Ledger, stream_of
from capa.bundle.catalog import Catalog
from capa.bundle.configdir import load_config_files
from capa.bundle.drops import DropCounter, rejection_event, rejection_key, rows_in
from capa.bundle.events import check_severity
from capa.bundle.files import BundleFiles
from capa.bundle.finalize import FinalizeResult, finalize_bundle
from capa.bundle.manifest import (
    RunStatus,
    new_manifest,
    read_manifest,
    write_manifest,
)
from capa.bundle.metrics import WriterMetrics, summary
from capa.bundle.paths import RUN_LOG_FILE, check_run_id, new_run_id
from capa.bundle.recovery import ActiveRun, StaleRun, clear_active, recover_stale, write_active
from capa.bundle.runlog import RunLog
from capa.bundle.space import describe_write_failure, release_reserve
from capa.bundle.staging import remove_stale_staging, stage_bundle
from capa.bundle.tables import EncoderFailed
from capa.bundle.trash import sweep
from capa.clock import RunClock
from capa.components.emissions import (
    DeviceRecords,
    EventRecord,
    EventSeverity,
    FrameReceipt,
    RunRecord,
    SampleRows,
    ScalarRows,
)
from capa.errors import BundleError

__all__ = ["DEFAULT_QUEUE_SIZE", "BundleWriter", "WriterMetrics"]

DEFAULT_QUEUE_SIZE: Final = 1024
"""Records (batches, not rows) the queue holds before ``submit`` blocks."""

_STOP: Final = object()


class BundleWriter:
    """Writes one run bundle from its own thread. Create it with :meth:`open`."""

    def __init__(
        self,
        *,
        runs_root: Path,
        bundle: Path,
        clock: RunClock,
        flush_interval_s: float,
        queue_size: int,
        catalog: Catalog | None,
        stale: StaleRun | None,
        ledger: Ledger | None = None,
    ) -> None:

        self.runs_root = runs_root
        self.bundle = bundle
        self.run_id = bundle.name
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.stale_run = stale
        """A crashed earlier run that :meth:`open` found and marked (tell the user)."""
        self._catalog = catalog
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._capacity = queue_size
        self._runlog = RunLog(bundle / RUN_LOG_FILE, self.run_id)
        self.ledger = ledger if ledger is not None else Ledger()
        """Rows emitted / written / dropped per device and stream (see accounting)."""
        # Without a ledger from the runtime nobody upstream counts ``emitted``: what is
        # queued here is what was emitted (tools and benchmarks writing directly).
        self._count_submitted = ledger is None
        self._files = BundleFiles(
            bundle, self.ledger, utc_at_zero=clock.started_utc.isoformat(timespec="microseconds")
        )
        self._drops = DropCounter(self.ledger)
        self._hw_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._high_water = 0
        self._records = 0
        self._rows_durable = 0
        self._flushes = 0
        self._max_flush_s = 0.0
        self._last_accept: int | None = None
        self._last_flush: int | None = None
        self._error: str | None = None
        self._closing = False
        self._abandoned = threading.Event()
        self._result: FinalizeResult | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"capa-bundle-writer-{self.run_id}", daemon=True
        )

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        runs_root: Path | str,
        *,
        run_id: str | None = None,
        manifest_fields: Mapping[str, Any] | None = None,
        config_files: Mapping[str, Path | bytes] | None = None,
        flush_interval_s: float = 1.0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        clock: RunClock | None = None,
        config_path: str | None = None,
        use_catalog: bool = True,
        nested: bool = False,
        ledger: Ledger | None = None,
    ) -> BundleWriter:
        """Create the bundle directory and start recording into it.

        Args:
            runs_root: where bundles and ``runs.sqlite`` live (see :mod:`capa.bundle.paths`).
            run_id: the bundle directory name; generated from the clock's start when omitted.
            manifest_fields: the runtime's manifest blocks (operator, sample, procedure,
                tags, custom, plugins, recording, cameras).
            config_files: name inside ``config/`` -> a file to copy (``Path``) or its bytes.
            flush_interval_s: the longest time data stays un-fsynced.
            queue_size: records the queue holds before :meth:`submit` blocks.
            clock: the run clock (a new one when omitted); stamps events and the manifest.
            config_path: the experiment file, recorded in the crash checkpoint.
            use_catalog: index the run in ``runs.sqlite``.
            nested: a child run of a run this process is already recording (a batch
                iteration): it does not claim the runs root's crash checkpoint, which
                stays the parent's.
            ledger: the run's sample accounting (the runtime passes the one its pipeline
                counts ``emitted`` in); a new one when omitted.

        Raises:
            BundleError: the bundle exists, a name is unusable, or another run is recording
                in this runs root.
        """
        if not flush_interval_s > 0:
            raise BundleError(f"flush_interval_s must be positive, got {flush_interval_s}")
        if queue_size < 1:
            raise BundleError(f"queue_size must be at least 1, got {queue_size}")
        root = Path(runs_root)
        root.mkdir(parents=True, exist_ok=True)
        stale = None if nested else recover_stale(root)
        if not nested:
            remove_stale_staging(root)
            sweep(root)
        clock = clock or RunClock()
        rid = check_run_id(run_id) if run_id else new_run_id(clock.started_utc)
        bundle = root / rid
        if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
            raise BundleError(f"bundle directory {bundle} already exists and is not empty")
        # Everything that can be refused is checked before the directory exists.
        configs = load_config_files(config_files or {})
        manifest = new_manifest(
            rid,
            clock.started_utc.isoformat(timespec="microseconds"),
            dict(manifest_fields or {}),
            clock=clock,
        )
        stage_bundle(root, bundle, configs, manifest)
        # From here the bundle exists with its manifest (``capa finalize`` can seal it);
        # if recording cannot start after all, remove it again: it holds no data yet.
        writer: BundleWriter | None = None
        try:
            writer = cls(
                runs_root=root,
                bundle=bundle,
                clock=clock,
                flush_interval_s=flush_interval_s,
                queue_size=queue_size,
                catalog=None,
                stale=stale,
                ledger=ledger,
            )
            if not nested:
                write_active(root, ActiveRun.for_this_process(rid, bundle, config_path))
        except BaseException as exc:
            if writer is not None:
                writer._files.abort()
                writer._runlog.close()
            shutil.rmtree(bundle, ignore_errors=True)
            if isinstance(exc, OSError | sqlite3.Error):
                raise BundleError(
                    f"cannot start recording: {describe_write_failure(bundle, exc)}"
                ) from exc
            raise
        operator = (manifest_fields or {}).get("operator")
        if isinstance(operator, Mapping) and operator.get("id"):
            # Seed 003: every run.log line names who ran the run.
            writer._runlog.bind_run(operator_id=str(operator["id"]))
        catalog: Catalog | None = None
        if use_catalog:
            try:
                catalog = Catalog(root)
                catalog.upsert(manifest, bundle)
            except BundleError as exc:
                # The catalog is an index: a broken one must not stop a measurement.
                writer.log.warning("bundle.catalog_unavailable", error=str(exc))
                catalog = None
        writer._catalog = catalog
        if stale is not None:
            writer.log.warning(
                "bundle.stale_run_found", stale_run_id=stale.run_id, detail=stale.message
            )
        writer.log.info(
            "bundle.opened",
            bundle=str(bundle),
            flush_interval_s=flush_interval_s,
            queue_size=queue_size,
        )
        writer._thread.start()
        return writer

    # ------------------------------------------------------------------ producer side
    @property
    def log(self) -> Any:
        """The structlog logger writing to ``run.log``, bound to ``run_id``."""
        return self._runlog.logger

    def bind_log(self, **values: Any) -> Any:
        """A ``run.log`` logger with extra bound values (``procedure_id``, ``step_id``)."""
        return self._runlog.bind(**values)

    def submit(self, record: RunRecord, timeout: float | None = None) -> None:
        """Queue a record for writing; blocks while the queue is full (backpressure).

        Call it from a worker thread, or from async code through
        ``anyio.to_thread.run_sync`` (the ``capa.bundle`` sink's :meth:`consume_async`
        does that only when the queue is actually full).

        Raises:
            BundleError: the writer is closed or failed, the record is not a run record,
                an event's severity is not info/warning/error, or ``timeout`` expired.
        """
        self._check(record)
        try:
            self._queue.put(record, timeout=timeout)
        except queue.Full:
            raise BundleError(
                f"bundle writer queue stayed full for {timeout} s (writer not keeping up)"
            ) from None
        self._note_depth()
        self._note_submitted(record)

    def try_submit(self, record: RunRecord) -> bool:
        """Queue a record if there is room now; ``False`` (nothing queued) when full.

        Never blocks, so it is safe on an event loop. Raises like :meth:`submit`.
        """
        self._check(record)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            return False
        self._note_depth()
        self._note_submitted(record)
        return True

    def _note_submitted(self, record: RunRecord) -> None:
        if self._count_submitted:
            stream = stream_of(record)
            if stream is not None:
                rows = rows_in(record)
                self.ledger.emitted(getattr(record, "device", ""), stream, rows)

    def _check(self, record: object) -> None:
        if self._closing:
            raise BundleError(f"bundle writer of run {self.run_id} is closed")
        if self._error is not None:
            raise BundleError(f"bundle writer of run {self.run_id} failed: {self._error}")
        if isinstance(record, EventRecord):
            check_severity(record.severity)
        elif not isinstance(record, ScalarRows | SampleRows | DeviceRecords | FrameReceipt):
            raise BundleError(f"not a run record: {type(record).__name__}")

    def _note_depth(self) -> None:
        depth = self._queue.qsize()
        if depth > self._high_water:
            with self._hw_lock:
                self._high_water = max(self._high_water, depth)

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = EventSeverity.INFO,
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event stamped with the run clock (the ``EventWriter`` protocol)."""
        self.submit(
            EventRecord(
                t_mono_ns=self.clock.now_ns(),
                t_utc=RunClock.utc_now_iso(),
                kind=kind,
                severity=EventSeverity(check_severity(severity)),
                source=source,
                message=message,
                metadata=metadata,
            )
        )

    def metrics(self) -> WriterMetrics:
        """Current progress (cheap; safe from any thread)."""
        return WriterMetrics(
            queue_depth=self._queue.qsize(),
            queue_capacity=self._capacity,
            queue_high_water=self._high_water,
            last_accept_mono_ns=self._last_accept,
            last_flush_mono_ns=self._last_flush,
            records=self._records,
            rows=self._files.rows,
            rows_durable=self._rows_durable,
            bytes=self._files.bytes_written,
            flushes=self._flushes,
            max_flush_s=round(self._max_flush_s, 6),
            events=self._files.events.rows,
            dropped_rows=self._drops.rows,
            error=self._error,
        )

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        interval = self.flush_interval_s
        next_flush = time.monotonic() + interval
        while not self._abandoned.is_set():
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                self._last_accept = time.monotonic_ns()
                self._records += 1
                self._accept(item)
            if time.monotonic() >= next_flush:
                self._safe_flush()
                next_flush = time.monotonic() + interval
        if self._abandoned.is_set():
            self._files.abort()  # someone else owns the bundle now: write nothing more
            return
        self._safe_flush()
        if self._error is not None:
            # After an I/O failure the Parquet side of a table is not trusted: leave every
            # table to finalize, which rebuilds it from its journal.
            self._files.release_tables()
        for exc in self._files.close():
            self._fail(exc)

    def _accept(self, record: object) -> None:
        if self._error is not None or self._abandoned.is_set():
            self._drop(record, "abandoned" if self._abandoned.is_set() else "writer_failed")
            return
        try:
            self._files.write(record)
        except EncoderFailed as exc:  # in the journal and counted: the Parquet side failed
            self._fail(exc.cause)
        except BundleError as exc:
            self._reject(record, str(exc))
        except (OSError, sqlite3.Error) as exc:  # disk trouble: stop writing, keep draining
            self._fail(exc)
            self._drop(record, "writer_failed")
        except Exception as exc:  # anything else is about this one record
            self._reject(record, f"{type(exc).__name__}: {exc}")

    def _drop(self, record: object, reason: str) -> None:
        self._drops.drop(record, reason)

    def note_dropped(self, record: RunRecord, reason: str) -> None:
        """Count a record a producer could not hand over (e.g. after the writer failed).

        Safe from any thread; the rows go into ``counts.dropped`` under ``reason``.
        """
        self._drop(record, reason)

    @property
    def failed(self) -> str | None:
        """Why the writer stopped writing (an I/O error, e.g. a full disk), or ``None``."""
        return self._error

    def _reject(self, record: object, why: str) -> None:
        self._drop(record, "rejected")
        key = rejection_key(record)
        self.log.error("bundle.record_rejected", record=key, reason=why)
        if not self._drops.first_rejection(key):
            return  # one event per kind of problem, not one per batch
        try:
            self._files.events.insert([rejection_event(self.clock, key, why)])
        except (OSError, sqlite3.Error) as exc:
            # The rejection is already in run.log and counted in counts.dropped; an
            # event log that cannot take it is a writer failure of its own.
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            # Free the space reserve first: the manifest, the events explaining the
            # failure and finalize need that room on a full disk.
            released = release_reserve(self.bundle)
            self._error = f"{type(exc).__name__}: {exc}"
            self.log.error("bundle.writer_failed", error=self._error, reserve_released=released)

    def _safe_flush(self) -> None:
        if self._error is not None or self._abandoned.is_set():
            return
        start = time.monotonic()
        rows = self._files.rows + self._files.pending_rows
        try:
            wrote = self._files.flush()
        except Exception as exc:
            self._fail(exc)
            return
        self._rows_durable = rows
        self._last_flush = time.monotonic_ns()
        if wrote:
            self._flushes += 1
            self._max_flush_s = max(self._max_flush_s, time.monotonic() - start)
            # The ledger's ``written`` only moves on this thread, so it now describes
            # exactly what the fsync above made durable: finalize can bound a crash.
            try:
                self.ledger.write_checkpoint(self.bundle, final=False)
            except OSError as exc:
                self._fail(exc)

    # ------------------------------------------------------------------ closing
    def close(
        self,
        run_status: RunStatus | str = RunStatus.COMPLETED,
        exit_reason: str = "",
        *,
        finalize: bool = True,
    ) -> FinalizeResult | None:
        """Drain the queue, make everything durable, record how the run ended, finalize.

        Idempotent: a second call returns the first call's result.

        Args:
            run_status: ``completed``, ``aborted`` or ``crashed``.
            exit_reason: short reason, empty on a clean exit.
            finalize: seal the bundle now (``False`` leaves it open with the run status
                recorded, for ``capa finalize`` later — benchmarks and tests use this).

        Raises:
            FinalizeError: sealing failed; the bundle stays recoverable.
        """
        status = RunStatus(run_status)
        if status is RunStatus.RUNNING:
            raise BundleError("close() needs a terminal run status, not 'running'")
        with self._close_lock:
            if self._closing:
                return self._result
            self._closing = True
            while self._thread.is_alive():  # never block forever on a dead consumer
                try:
                    self._queue.put(_STOP, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            # The reserve has done its job once the data files are closed; finalize
            # would remove it anyway, and an unfinalized bundle should not keep it.
            release_reserve(self.bundle)
            for frame in self._files.discard_buffered():
                self._drop(frame, "writer_failed")  # never flushed: the writer had failed
            self._final_checkpoint(exact=True)
            metrics = self.metrics()
            self.log.info("bundle.closing", run_status=status.value, **summary(metrics))
            self._runlog.close()
            manifest = read_manifest(self.bundle)
            counts = dict(manifest.counts)
            counts["dropped"] = self._drops.counts()
            reason = exit_reason
            if self._error is not None:
                # Data stopped reaching disk: whatever the caller thought, the run did not
                # complete, and the reason says so.
                status = RunStatus.CRASHED
                failure = f"bundle writer failed: {self._error}"
                if "writer" not in reason:
                    reason = f"{reason}; {failure}" if reason else failure
            manifest = manifest.transition(
                run_status=status,
                exit_reason=reason,
                ended_utc=RunClock.utc_now_iso(),
                queue_health=metrics.as_queue_health(self.flush_interval_s),
                counts=counts,
            )
            write_manifest(self.bundle, manifest)
            try:
                if finalize:
                    self._result = finalize_bundle(self.bundle)
            finally:
                if self._catalog is not None:
                    with contextlib.suppress(BundleError):
                        self._catalog.upsert(read_manifest(self.bundle), self.bundle)
                clear_active(self.runs_root, self.run_id)
            return self._result

    def abandon(
        self,
        run_status: RunStatus | str,
        exit_reason: str = "",
        *,
        late_events: Iterable[EventRecord] = (),
        join_timeout_s: float = 1.0,
    ) -> None:
        """Give up on a writer thread that stopped making progress (saturation deadline).

        The thread is told to write nothing more (if it ever returns from the call it is
        stuck in, it releases its files untouched); queued records are dropped and counted
        as ``abandoned``. ``late_events`` plus a ``bundle.writer_abandoned`` error event go
        into ``events.sqlite`` through a connection of their own (if that stays locked
        they are kept in ``manifest.custom.late_events`` instead). The manifest records
        ``run_status``, ``exit_reason`` and the queue health; the catalog row is updated
        and the crash checkpoint removed. The bundle is left ``open``: seal it with
        :func:`~capa.bundle.finalize.finalize_bundle`, which keeps everything that reached
        disk. A no-op after :meth:`close` or a previous ``abandon``.
        """
        abandon_writer(
            self,
            run_status,
            exit_reason,
            late_events=late_events,
            join_timeout_s=join_timeout_s,
            stop=_STOP,
        )

    def _final_checkpoint(self, *, exact: bool) -> None:
        try:
            self.ledger.write_checkpoint(self.bundle, final=True, exact=exact)
        except OSError as exc:
            # Finalize then reports the accounting as incomplete (last checkpoint only).
            self.log.error("bundle.accounting_checkpoint_failed", error=str(exc))
            self._fail(exc)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close(RunStatus.COMPLETED)
        else:
            self.close(RunStatus.CRASHED, f"{type(exc).__name__}: {exc}")
