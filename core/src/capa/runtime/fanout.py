"""Extra sinks: every record the bundle gets, fanned out to each configured sink, isolated.

The bundle (``capa.bundle``) stays the run's primary sink with backpressure. Each extra
sink named in the experiment's ``sinks:`` list gets a :class:`SinkRunner`: a bounded queue
and a thread of its own that opens the sink, calls :meth:`~capa.Sink.consume` for every
record and closes it. Offering a record never blocks the producer: a full queue drops the
record for that sink only (counted, and reported once as ``sink.dropped``), so a slow or
failing sink can neither stall acquisition nor touch the bundle. A sink that raises is
reported (``sink.failed``) and handled by its ``on_failure``: ``warn`` keeps the run (and
the sink) going, ``abort`` stops the run (``aborted``, exit reason ``sink_failure: ...``).

Counters per sink (``offered``, ``delivered``, ``dropped`` by reason, ``failed``) go to
``manifest.counts.sinks``; ``offered == delivered + failed + dropped`` when the run ends.

:class:`FanoutSession` wraps the run's :class:`~capa.runtime.session.RunSession` so the
conductor, the pipeline and the procedure's events reach the sinks through the same calls
that reach the bundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from capa.clock import RunClock
from capa.components.emissions import EventRecord, EventSeverity, RunRecord
from capa.runtime.plan import SinkPlan
from capa.runtime.state import RunOutcome

if TYPE_CHECKING:
    from capa.bundle.accounting import Ledger
    from capa.components.sink import Sink
    from capa.runtime.session import RunSession, SealResult, WriterProgress

__all__ = ["FanoutSession", "SinkPlan", "SinkRunner"]

_STOP: Final = object()
# A sink failing on every record must not bury the event log (as for devices).
_EVENTS_IN_FULL: Final = 5
_EVENT_EVERY: Final = 1000

EmitFn = Callable[..., None]
AbortFn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _Context:
    """The :class:`~capa.SinkContext` an extra sink is opened with."""

    run_id: str
    bundle_path: Path | None
    clock: RunClock | None = None


class SinkRunner:
    """One extra sink: its bounded queue, its thread, its counters.

    Args:
        plan: the sink.
        emit: records an event in the run (thread-safe).
        abort: asks the run to stop (thread-safe); used when ``on_failure`` is ``abort``.
    """

    def __init__(self, plan: SinkPlan, emit: EmitFn, abort: AbortFn) -> None:
        self.plan = plan
        self.source = f"sink:{plan.label}"
        self._emit = emit
        self._abort = abort
        self._queue: queue.Queue[object] = queue.Queue(maxsize=plan.queue_size)
        self._lock = threading.Lock()
        self.offered = 0
        self.delivered = 0
        self.failed = 0
        self.dropped: dict[str, int] = {}
        self.state = "new"
        self.error: str | None = None
        self._aborted = False
        self._abandoned = False
        self._accepting = True
        self._run_status = RunOutcome.ABORTED.run_status
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None

    # ------------------------------------------------------------------ producer side
    def offer(self, record: RunRecord) -> None:
        """Queue ``record`` for the sink; never blocks (a full queue drops it, counted)."""
        if isinstance(record, EventRecord) and record.source == self.source:
            return  # its own failure reports would feed back into a failing sink
        with self._lock:
            self.offered += 1
            if not self._accepting:
                self._count_drop("sink_failed" if self.state == "failed" else "closed")
                return
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                first = not self.dropped.get("queue_full")
                self._count_drop("queue_full")
            else:
                return
        if first:
            self._event(
                "sink.dropped",
                f"{self.plan.label}: queue of {self.plan.queue_size} records full; records "
                "are dropped for this sink (the bundle is not affected)",
                "warning",
                {"queue_size": self.plan.queue_size},
            )

    def _count_drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    # ------------------------------------------------------------------ sink thread
    def start(self, ctx: _Context) -> None:
        """Start the sink's thread; it opens the sink, then consumes (returns at once)."""
        self._thread = threading.Thread(
            target=self._main, args=(ctx,), name=f"capa-sink {self.plan.label}", daemon=True
        )
        self._thread.start()

    def _main(self, ctx: _Context) -> None:
        # A private loop for the sink's async open() and close(); consume() is sync by
        # contract and runs on this thread, never on the run's loop.
        loop = asyncio.new_event_loop()
        try:
            try:
                sink = self.plan.cls(self.plan.config)
                loop.run_until_complete(sink.open(ctx))
            except Exception as exc:
                self._failure("open", exc)
                self._stop_accepting(failed=True)
                return
            if self._given_up():
                return  # open() outlasted the run: it was given up on and counted
            self._sink = sink
            self.state = "open"
            self._consume_all(sink)
            if self._given_up():
                return  # the run is over and sealed without it
            try:
                loop.run_until_complete(sink.close(self._run_status))
            except Exception as exc:
                self._failure("close", exc)
                return
            if self.state == "open":
                self.state = "closed"
        finally:
            loop.close()

    def _given_up(self) -> bool:
        with self._lock:
            return self._abandoned

    def _consume_all(self, sink: Sink) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                sink.consume(item)  # type: ignore[arg-type]
            except Exception as exc:
                with self._lock:
                    if self._abandoned:
                        return  # already counted as dropped when it was given up on
                    self.failed += 1
                self._failure("consume", exc)
                if self.plan.on_failure == "abort":
                    # The run is stopping because of this sink: it gets nothing more
                    # (what is queued is counted as dropped), but is still closed.
                    self._stop_accepting(failed=True)
                    return
            else:
                with self._lock:
                    if self._abandoned:
                        return  # already counted as dropped when it was given up on
                    self.delivered += 1

    def _stop_accepting(self, *, failed: bool) -> None:
        """Refuse further records and count what is still queued as dropped."""
        with self._lock:
            self._accepting = False
            if failed:
                self.state = "failed"
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    self._count_drop("sink_failed" if failed else "abandoned")

    def _failure(self, stage: str, exc: BaseException) -> None:
        summary = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.error = self.error or f"{stage}: {summary}"
            count = self.failed if stage == "consume" else 1
        if count <= _EVENTS_IN_FULL or count % _EVENT_EVERY == 0:
            self._event(
                "sink.failed",
                f"{self.plan.label}: {stage} raised {summary}",
                "error",
                {"stage": stage, "on_failure": self.plan.on_failure, "failures": count},
            )
        if self.plan.on_failure == "abort" and not self._aborted:
            self._aborted = True
            self._abort(f"sink {self.plan.label}: {stage} raised {summary}")

    def _event(self, kind: str, message: str, severity: str, meta: Mapping[str, Any]) -> None:
        try:
            self._emit(kind, message, severity=severity, source=self.source, metadata=dict(meta))
        except Exception as exc:
            # The bundle no longer takes events (a sink thread outliving the run): the
            # counters in the manifest still say what happened; run.log gets this.
            import structlog

            structlog.get_logger("capa.sink").error(
                "sink.event_unrecorded", sink=self.plan.label, kind=kind, error=str(exc)
            )

    # ------------------------------------------------------------------ closing
    def finish(self, run_status: str, timeout_s: float) -> None:
        """Let the sink drain and close within ``timeout_s``; abandon it otherwise."""
        self._run_status = run_status
        thread = self._thread
        if thread is None:
            return
        # Even with a zero shutdown grace a healthy sink gets a moment to close its file.
        timeout_s = max(timeout_s, 1.0)
        # Full for the whole timeout: the sink is stuck on one record; the join below
        # then gives up on it and its queue is counted as dropped.
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        thread.join(timeout_s)
        if not thread.is_alive():
            # A sink that stopped early (failed) leaves the sentinel, and anything
            # offered after it failed, in its queue: count, don't leave it "queued".
            self._stop_accepting(failed=self.state == "failed")
        else:
            self._stop_accepting(failed=False)
            with self._lock:
                # The record the sink is stuck on will never count as delivered.
                self._abandoned = True
                in_hand = self.offered - self.delivered - self.failed - sum(self.dropped.values())
                if in_hand > 0:
                    self._count_drop("abandoned", in_hand)
            self.state = "abandoned"
            self._event(
                "sink.abandoned",
                f"{self.plan.label}: did not drain and close within {timeout_s:g} s; "
                "undelivered records counted as dropped",
                "error",
                {"timeout_s": timeout_s},
            )
        with self._lock:
            self._accepting = False

    def counters(self) -> dict[str, Any]:
        """This sink's entry in ``manifest.counts.sinks``."""
        with self._lock:
            return {
                "id": self.plan.cls.id,
                "on_failure": self.plan.on_failure,
                "state": self.state,
                "offered": self.offered,
                "delivered": self.delivered,
                "failed": self.failed,
                "dropped": sum(self.dropped.values()),
                "dropped_by_reason": dict(sorted(self.dropped.items())),
                "queued": self._queue.qsize(),
                "error": self.error,
            }


class FanoutSession:
    """A :class:`RunSession` that also hands every record and event to extra sinks.

    Args:
        inner: the bundle's session (primary: backpressure, failures decide the run).
        sinks: the extra sinks.
        grace_s: how long sinks get to drain and close when the run ends.
    """

    def __init__(self, inner: RunSession, sinks: Sequence[SinkPlan], grace_s: float) -> None:
        self.inner = inner
        self._plans = tuple(sinks)
        self._grace_s = grace_s
        self._runners: list[SinkRunner] = []
        self._clock: RunClock | None = None
        self.on_abort: AbortFn = lambda _reason: None
        """Set by the conductor: stops the run when an ``abort`` sink fails."""

    # The RunSession surface, delegated -------------------------------------------
    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.inner.run_id

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory, once open."""
        return self.inner.bundle_path

    @property
    def log(self) -> Any:
        """The run's logger."""
        return self.inner.log

    @property
    def ledger(self) -> Ledger:
        """The bundle's sample accounting."""
        return self.inner.ledger

    @property
    def stale_message(self) -> str | None:
        """Passed through from the bundle session."""
        return getattr(self.inner, "stale_message", None)

    def open(self, clock: RunClock, manifest_fields: Mapping[str, Any]) -> None:
        """Open the bundle, then start every extra sink (each opens on its own thread)."""
        self.inner.open(clock, manifest_fields)
        self._clock = clock
        ctx = _Context(self.inner.run_id, self.inner.bundle_path, clock)
        for plan in self._plans:
            runner = SinkRunner(plan, self.inner.emit, self._abort)
            self._runners.append(runner)
            runner.start(ctx)

    def _abort(self, reason: str) -> None:
        self.on_abort(reason)

    def submit(self, record: RunRecord) -> None:
        """Offer to every sink (never blocks), then store in the bundle (may block)."""
        for runner in self._runners:
            runner.offer(record)
        self.inner.submit(record)

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = EventSeverity.INFO,
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event in the bundle and offer it to every sink."""
        self.inner.emit(kind, message, severity=severity, source=source, metadata=metadata)
        if self._runners:
            record = EventRecord(
                t_mono_ns=self._clock.now_ns() if self._clock else 0,
                t_utc=RunClock.utc_now_iso(),
                kind=kind,
                severity=EventSeverity(severity),
                source=source,
                message=message,
                metadata=dict(metadata) if metadata else None,
            )
            for runner in self._runners:
                runner.offer(record)

    def progress(self) -> WriterProgress:
        """The bundle writer's progress (sinks never hold the run back)."""
        return self.inner.progress()

    def abandon_writer(self) -> None:
        """Stop feeding the bundle writer."""
        self.inner.abandon_writer()

    def child(self) -> RunSession:
        """A child run's session (its conductor adds the sinks again)."""
        return self.inner.child()

    def close(self, outcome: RunOutcome, exit_reason: str, extra: Mapping[str, Any]) -> SealResult:
        """Drain and close the sinks (bounded), record their counters, seal the bundle."""
        for runner in self._runners:
            runner.finish(outcome.run_status, self._grace_s)
        counts = dict(extra.get("counts", {}))
        counts["sinks"] = {r.plan.label: r.counters() for r in self._runners}
        return self.inner.close(outcome, exit_reason, {**extra, "counts": counts})
