"""How a run's failures are recorded, and the outcome they add up to.

A mixin of :class:`~capa.runtime.conductor.Conductor`: the handlers the conductor hands to
its workers, sinks, monitors and procedure task (a crashed procedure, a failed writer, a
device error on a worker thread, a failing sink, loop-lag and writer-stall warnings), and
:meth:`FailureHandlers._outcome`, which turns what they recorded into the run's outcome and
``exit_reason``. None of these raises: the handler of one failure must not cause another.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import TYPE_CHECKING, Any

from capa.bundle.space import describe_write_failure, is_disk_full
from capa.errors import BundleError
from capa.runtime.failures import describe_failure
from capa.runtime.monitors import LoopLagMeter, MonitorEvents, SaturationTrip
from capa.runtime.plan import RunPlan
from capa.runtime.safety import SafetyMonitor
from capa.runtime.session import RunSession
from capa.runtime.state import RunOutcome

if TYPE_CHECKING:
    from capa.runtime.conductor import ConductorConfig

__all__ = ["WRITER_FAILED", "FailureHandlers"]

WRITER_FAILED = "writer_failed"
"""``exit_reason`` prefix of a run stopped because its bundle could not be written."""

# Device errors are events; a device failing on every 10 Hz tick must not bury the log.
_ERROR_EVENTS_IN_FULL = 5
_ERROR_EVENT_EVERY = 100


class FailureHandlers:
    """Failure handlers and the outcome decision of a conductor.

    A mixin: the state it reads and writes is the conductor's, declared here for the type
    checker.
    """

    plan: RunPlan
    session: RunSession
    config: ConductorConfig
    safety: SafetyMonitor | None
    _crash: str | None
    _writer_failure: str | None
    _saturation: SaturationTrip | None
    _stop_reason: str | None
    _loop: asyncio.AbstractEventLoop | None
    _lag: LoopLagMeter
    _warnings: MonitorEvents | None
    _device_errors: dict[str, int]

    if TYPE_CHECKING:

        def stop(self, reason: str = "operator_stop") -> None:
            """Ask the run to stop (:meth:`capa.runtime.conductor.Conductor.stop`)."""

    def _run_failed(self, exc: BaseException) -> None:
        summary = describe_failure(exc)
        self._crash = self._crash or f"run: {summary}"
        self._emit_safely(
            "conductor.crashed",
            summary,
            severity="error",
            source="conductor",
            metadata={"traceback": traceback.format_exception(exc)[-8:]},
        )
        self._log_safely("error", "conductor.run_failed", error=summary)
        self.stop("crashed")

    def _emit_safely(self, kind: str, message: str, **fields: Any) -> None:
        """Record an event; if storage refuses it, say so on stderr rather than raise.

        Used on failure paths: the handler of one failure must not raise a second one
        (the writer may be the very thing that failed).
        """
        try:
            self.session.emit(kind, message, **fields)
        except Exception as exc:
            _stderr(f"capa: could not record event {kind} ({message}): {exc}")

    def _log_safely(self, level: str, event: str, **fields: Any) -> None:
        try:
            getattr(self.session.log, level)(event, **fields)
        except Exception as exc:
            _stderr(f"capa: could not log {event}: {exc}")

    def _procedure_crashed(self, exc: BaseException) -> None:
        summary = describe_failure(exc)
        self._crash = self._crash or f"procedure: {summary}"
        self._emit_safely(
            "procedure.crashed",
            summary,
            severity="error",
            source=f"procedure:{self.plan.procedure.id}",
            metadata={"traceback": traceback.format_exception(exc)[-8:]},
        )
        self._log_safely("error", "conductor.procedure_crashed", error=summary)

    def _writer_failed(self, error: str) -> None:
        """Storage stopped working (disk full, I/O error): stop acquiring at once."""
        if self._writer_failure is not None:
            return
        bundle = self.session.bundle_path
        self._writer_failure = describe_write_failure(bundle, error) if bundle else error
        self._emit_safely(
            "bundle.writer_failed",
            f"{self._writer_failure}; acquisition stopped",
            severity="error",
            source="capa.bundle",
            metadata={"error": error, "disk_full": is_disk_full(error)},
        )
        self._log_safely("error", "conductor.writer_failed", error=error)
        self.stop(WRITER_FAILED)

    def _lag_warning(self, lag_ms: float) -> None:
        count = self._lag.warnings
        if count <= _ERROR_EVENTS_IN_FULL:
            self.session.log.warning("conductor.loop_lag", lag_ms=round(lag_ms, 1))
        # An event too (the first few, then every 100th; manifest has the total).
        if self._warnings is not None and (
            count <= _ERROR_EVENTS_IN_FULL or count % _ERROR_EVENT_EVERY == 0
        ):
            self._warnings.warn(
                "conductor.loop_lag",
                f"event loop {lag_ms:.1f} ms late (warning {count}; limit "
                f"{self._lag.warn_ms:g} ms)",
                {"lag_ms": round(lag_ms, 3), "warn_ms": self._lag.warn_ms, "warnings": count},
            )

    def _stall_warning(self, stalled_s: float, queue_depth: int) -> None:
        deadline = self.config.saturation_deadline_s
        self._log_safely(
            "warning", "conductor.writer_stalled", stalled_s=round(stalled_s, 3),
            queue_depth=queue_depth, deadline_s=deadline,
        )  # fmt: skip
        if self._warnings is not None:
            self._warnings.warn(
                "conductor.saturation_warning",
                f"bundle writer accepted nothing for {stalled_s:.1f} s with {queue_depth} "
                f"records queued (the run stops at {deadline:g} s)",
                {"stalled_s": round(stalled_s, 3), "queue_depth": queue_depth,
                 "deadline_s": deadline},
            )  # fmt: skip

    def _device_error(self, device: str, exc: BaseException) -> None:
        """Called on a worker thread when a device's read, stream or emission fails."""
        from capa.errors import EmissionError

        count = self._device_errors.get(device, 0) + 1
        self._device_errors[device] = count
        plan = self.plan.device(device)
        if count <= _ERROR_EVENTS_IN_FULL or count % _ERROR_EVENT_EVERY == 0:
            kind = "device.emission_rejected" if isinstance(exc, EmissionError) else None
            try:
                self.session.emit(
                    kind or "worker_adapter_error",
                    f"{device}: {type(exc).__name__}: {exc}",
                    severity="error",
                    source=f"{plan.adapter.id}:{device}",
                    metadata={
                        "resource_id": plan.resource_id,
                        "count": count,
                        "on_failure": plan.on_failure,
                        "error": type(exc).__name__,
                    },
                )
            except BundleError as log_exc:
                # The writer is closed or failed (a worker still running after the run
                # was sealed): run.log is the last place left; the count is kept in
                # queue_health.runtime.device_errors.
                self.session.log.error(
                    "conductor.device_error_unrecorded", device=device, error=str(log_exc)
                )
        if plan.on_failure != "warn" and self._loop is not None:
            reason = f"device {device}: {type(exc).__name__}: {exc}"
            if plan.on_failure == "safe_shutdown" and self.safety is not None:
                # Safe targets first (on the loop, by the monitor), then the stop.
                self.safety.request_safe_shutdown(f"device {device}", reason)
            self._loop.call_soon_threadsafe(self._device_abort, reason)

    def _sink_failed(self, reason: str) -> None:
        """Called on a sink's thread when a sink with ``on_failure: abort`` fails."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self.stop, f"sink_failure: {reason}")
        except RuntimeError:
            # The run's loop is gone (a sink failing after the run ended): the outcome
            # is decided; the sink.failed event and counts.sinks record it.
            self.session.log.error("conductor.sink_failed_after_run", reason=reason)

    def _device_abort(self, reason: str) -> None:
        self._crash = self._crash or reason
        self.stop("device_failure")

    def _outcome(self) -> tuple[RunOutcome, str]:
        if self._writer_failure is None:
            error = self._final_writer_error()
            if error is not None:  # failed after the watchers stopped (while draining)
                self._writer_failed(error)
        if self._writer_failure is not None:
            return RunOutcome.CRASHED, f"{WRITER_FAILED}: {self._writer_failure}"
        if self._saturation is not None:
            trip = self._saturation
            return RunOutcome.CRASHED_BUT_SEALED, (
                f"saturation_deadline: writer made no progress for {trip.blocked_s:.1f} s "
                f"with {trip.queue_depth} records queued"
            )
        if self._crash is not None:
            return RunOutcome.CRASHED, self._crash
        if self._stop_reason is not None:
            return RunOutcome.ABORTED, self._stop_reason
        return RunOutcome.COMPLETED, ""

    def _safety_counts(self, devices: dict[str, Any]) -> dict[str, Any]:
        """``counts.safety``, and each device's watchdog trips in its own counters."""
        if self.safety is None or not self.safety.active:
            return {}
        summary = self.safety.summary()
        for name, trips in summary["watchdog_trips"].items():
            devices.setdefault(name, {})["watchdog_trips"] = trips
        return {"safety": summary}

    def _final_writer_error(self) -> str | None:
        try:
            error: str | None = getattr(self.session.progress(), "error", None)
            return error
        except Exception as exc:  # a session that cannot even report: that is the error
            return f"{type(exc).__name__}: {exc}"


def _stderr(text: str) -> None:
    import sys

    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: there is nowhere left to say it
        return
