"""The conductor: one run, from preflight to a sealed bundle.

``PREPARING → RUNNING → DRAINING → FINALIZING → SEALED`` (or ``FAILED``). The conductor
runs on the caller's event loop (anyio, asyncio backend); device I/O happens on the
workers' threads. Whatever happens — a procedure that raises, a device that hangs, a writer
that stalls, an operator's Ctrl-C — the conductor drains what it can and seals the bundle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from capa.bundle.space import describe_write_failure, is_disk_full
from capa.clock import RunClock
from capa.components.adapter import Command, CommandResult
from capa.errors import BundleError, ConductorStateError
from capa.problems import Problem
from capa.runtime.channels import ChannelRegistry
from capa.runtime.context import ConductorRunContext
from capa.runtime.failures import describe_failure
from capa.runtime.monitors import (
    LoopLagMeter,
    MonitorEvents,
    SaturationTrip,
    watch_saturation,
    watch_writer_failure,
)
from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
from capa.runtime.plan import RunPlan, RuntimeOptions
from capa.runtime.pool import WorkerPool
from capa.runtime.results import HeadlessResult, RunResult
from capa.runtime.safety import SafetyMonitor, safe_targets_of
from capa.runtime.session import RunSession
from capa.runtime.state import ConductorState, RunOutcome

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["WRITER_FAILED", "Conductor", "ConductorConfig"]

WRITER_FAILED = "writer_failed"
"""``exit_reason`` prefix of a run stopped because its bundle could not be written."""

# Device errors are events; a device failing on every 10 Hz tick must not bury the log.
_ERROR_EVENTS_IN_FULL = 5
_ERROR_EVENT_EVERY = 100


@dataclass(frozen=True, slots=True)
class ConductorConfig:
    """Per-run timing knobs (defaults suit tests; the CLI builds them from the experiment).

    Attributes:
        saturation_deadline_s: writer stall that ends the run as crashed-but-sealed.
        saturation_poll_period_s: how often the saturation monitor looks.
        shutdown_grace_s: how long a procedure and each worker get to stop.
        loop_lag_warn_ms: heartbeat lag reported as a warning event.
        command_timeout_s: bound on one device command.
    """

    saturation_deadline_s: float = 10.0
    saturation_poll_period_s: float = 0.25
    shutdown_grace_s: float = 5.0
    loop_lag_warn_ms: float = 50.0
    command_timeout_s: float = 10.0

    @classmethod
    def from_runtime(cls, runtime: RuntimeOptions) -> ConductorConfig:
        """Copy the user-facing knobs of an experiment's ``runtime`` table."""
        return cls(
            saturation_deadline_s=runtime.saturation_deadline_s,
            shutdown_grace_s=runtime.shutdown_grace_s,
            loop_lag_warn_ms=runtime.loop_lag_warn_ms,
            command_timeout_s=runtime.command_timeout_s,
        )


class Conductor:
    """Coordinates one run over an open :class:`WorkerPool` and a :class:`RunSession`."""

    def __init__(
        self,
        *,
        plan: RunPlan,
        pool: WorkerPool,
        session: RunSession,
        config: ConductorConfig | None = None,
        external_stop: anyio.Event | None = None,
        host: PluginHost | None = None,
        allow_children: bool = True,
    ) -> None:
        self.plan = plan
        self._host = host
        self._allow_children = allow_children and host is not None
        self.pool = pool
        self.config = config or ConductorConfig.from_runtime(plan.runtime)
        if plan.sinks:
            # Extra sinks see every record and event the bundle sees, each isolated on
            # its own queue and thread (capa.runtime.fanout).
            from capa.runtime.fanout import FanoutSession

            fanout = FanoutSession(session, plan.sinks, self.config.shutdown_grace_s)
            fanout.on_abort = self._sink_failed
            session = fanout
        self.session: RunSession = session
        self.external_stop = external_stop or anyio.Event()
        self.state = ConductorState.PREPARING
        self.clock: RunClock | None = None
        self.registry = ChannelRegistry(plan.channel_names)
        self.pipeline: ChannelPipeline | None = None
        self.context: ConductorRunContext | None = None
        self._stop_reason: str | None = None
        self._crash: str | None = None
        self._saturation: SaturationTrip | None = None
        self._stop_requested = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lag = LoopLagMeter(self.config.loop_lag_warn_ms)
        self._warnings: MonitorEvents | None = None
        """Loop-lag and writer-stall warnings on their way to ``events.sqlite``."""
        self._device_errors: dict[str, int] = {}
        self._writer_failure: str | None = None
        self.safety: SafetyMonitor | None = None
        """Alarms, watchdogs and interlocks; built when the run clock starts."""

    # ------------------------------------------------------------------ control
    def runtime_diagnostics(self) -> dict[str, dict[str, float]]:
        """Loop-lag, per-resource hand-off and worker counters (:mod:`.diagnostics`)."""
        from capa.runtime.diagnostics import snapshot

        return snapshot(self._lag, self.pool.workers)

    @property
    def run_id(self) -> str:
        """The run's id (empty before the bundle opens)."""
        return self.session.run_id

    def stop(self, reason: str = "operator_stop") -> None:
        """Ask the run to stop. Idempotent: the first reason is the one recorded."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_requested.set()
        self.external_stop.set()

    def _set_state(self, target: ConductorState) -> None:
        self.state.check_transition(target)
        self.state = target

    async def dispatch(self, device: str, command: Command) -> CommandResult:
        """Send a command during the run; recorded as an event with its authorization.

        Raises:
            ConductorStateError: outside PREPARING / RUNNING (a command during DRAINING
                would race with the adapter's ``stop()``).
            UnknownDeviceError: ``device`` is not configured.
        """
        if not self.state.permits_dispatch:
            raise ConductorStateError(
                f"command {command.name!r} to {device!r} refused: run is {self.state.value}"
            )
        refused = self._interlock(device, command)
        if refused is not None:
            return refused
        result = await self.pool.dispatch(device, command, self.config.command_timeout_s)
        if result.accepted and self.safety is not None and self._configured(device):
            self.safety.command_accepted(self.plan.device(device), command)
        if self.clock is not None and result.t_mono_ns == 0:
            result = CommandResult(
                result.accepted, result.detail, self.clock.now_ns(), result.value
            )
        if self.session.bundle_path is not None:
            adapter_id = self.plan.device(device).adapter.id
            self.session.emit(
                command.name,
                f"{device}: {command.name} {'accepted' if result.accepted else 'refused'}"
                + (f" ({result.detail})" if result.detail else ""),
                severity="info" if result.accepted else "warning",
                source=f"{adapter_id}:{device}",
                metadata={
                    "device": device,
                    "args": dict(command.args),
                    "accepted": result.accepted,
                    "detail": result.detail,
                    "authorization_id": command.authorization_id,
                },
            )
        return result

    def _configured(self, device: str) -> bool:
        return any(d.name == device for d in self.plan.devices)

    def _interlock(self, device: str, command: Command) -> CommandResult | None:
        """A refusal if ``command`` breaks an interlock (recorded as an event), else None.

        Checked here, where every command of a run passes — method steps, procedures and
        manual commands alike — before anything reaches the device.
        """
        if self.safety is None or not self._configured(device):
            return None
        reason = self.safety.check_command(self.plan.device(device), command, self.registry.latest)
        if reason is None:
            return None
        now = self.clock.now_ns() if self.clock is not None else 0
        self._emit_safely(
            "interlock.refused",
            f"{device}: {command.name} refused by interlock: {reason}",
            severity="error",
            source="safety",
            metadata={
                "device": device,
                "command": command.name,
                "args": dict(command.args),
                "reason": reason,
                "authorization_id": command.authorization_id,
            },
        )
        return CommandResult(False, f"interlock: {reason}", now)

    async def snapshot(self, device: str) -> Any:
        """Status fields of a device, gated like :meth:`dispatch`."""
        if not self.state.permits_dispatch:
            raise ConductorStateError(f"snapshot of {device!r} refused: run is {self.state.value}")
        return await self.pool.snapshot(device, self.config.command_timeout_s)

    async def run_child(
        self,
        procedure_id: str,
        config: Mapping[str, Any],
        *,
        sample_id: str | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> HeadlessResult:
        """Run ``procedure_id`` as a child run on this run's pool (see RunContext.run_child)."""
        from capa.errors import ConfigError, UnknownComponentError

        if not self._allow_children or self._host is None or self.pipeline is None:
            raise ConductorStateError("child runs are not available in this run")
        if self.state is not ConductorState.RUNNING:
            raise ConductorStateError(f"cannot start a child run: run is {self.state.value}")
        try:
            record = self._host.procedures.record(procedure_id)
        except UnknownComponentError as exc:
            raise ConfigError(f"child run: {exc}") from None
        if record.cls is self.plan.procedure:
            raise ConfigError(f"child run: {procedure_id} cannot run itself as a child")
        try:
            cfg = record.cls.Config.model_validate(dict(config))
        except ValueError as exc:  # pydantic.ValidationError
            raise ConfigError(f"child run: {procedure_id} config: {exc}") from None
        fields = dict(self.plan.manifest_fields)
        sample = dict(fields.get("sample") or {})
        if sample_id is not None:
            sample["id"] = sample_id
        fields.update(
            sample=sample,
            custom={**dict(fields.get("custom") or {}), **dict(custom or {})},
            procedure={"id": procedure_id, "version": record.version, "dist": record.dist},
        )
        plan = dataclasses.replace(
            self.plan, procedure=record.cls, procedure_config=cfg, manifest_fields=fields
        )
        child = Conductor(
            plan=plan,
            pool=self.pool,
            session=self.session.child(),
            config=self.config,
            host=self._host,
            allow_children=False,
        )
        # One run samples the devices at a time: pause ours while the child records.
        await self.pool.stop_sampling_all(self.config.shutdown_grace_s)
        self.session.log.info("conductor.child_started", procedure=procedure_id)
        try:
            async with anyio.create_task_group() as tg:

                async def forward_stop() -> None:
                    await self._stop_requested.wait()
                    child.stop("parent_stopped")

                tg.start_soon(forward_stop)
                result = await child.run()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self._arm()
                await self.pool.begin_sampling_all()
        self.session.log.info(
            "conductor.child_ended", run_id=result.run_id, outcome=result.outcome.value
        )
        return HeadlessResult(
            run_id=result.run_id,
            bundle_path=result.bundle_path,
            run_status=result.outcome.run_status,
            bundle_status=result.bundle_status,
            integrity_status=result.integrity_status,
            exit_reason=result.exit_reason,
        )

    def _arm(self) -> None:
        assert self.clock is not None
        assert self.pipeline is not None
        self.pool.arm_all(
            self.clock,
            self.pipeline.process,
            self._device_error,
            self.registry.latest,
            self.session.bundle_path,
        )

    def progress(self) -> dict[str, Any]:
        """Elapsed time, rows written, latest values and the procedure's own progress."""
        elapsed = self.clock.now_ns() / 1e9 if self.clock else 0.0
        rows = self.session.progress().rows if self.session.bundle_path else 0
        return {
            "state": self.state.value,
            "elapsed_s": elapsed,
            "rows": rows,
            "latest": self.registry.snapshot(),
            **(self.context.progress if self.context else {}),
        }

    # ------------------------------------------------------------------ the run
    async def run(self) -> RunResult:
        """Carry the run through every state; always returns (never raises for a run failure)."""
        self._loop = asyncio.get_running_loop()
        self.clock = RunClock()
        self._warnings = MonitorEvents(
            self.session, self.clock, self.config.saturation_poll_period_s
        )
        log = _null_log()
        procedure = self.plan.procedure(self.plan.procedure_config)
        self.context = ConductorRunContext(
            plan=self.plan,
            clock=self.clock,
            registry=self.registry,
            session=self.session,
            dispatch=self.dispatch,
            external_stop=self.external_stop,
            log=log,
            run_child=self.run_child if self._allow_children else None,
        )
        self.safety = SafetyMonitor(
            alarms=self.plan.alarms,
            interlocks=self.plan.interlocks,
            channels=self.plan.channels,
            devices=self.plan.devices,
            safe_targets=safe_targets_of(self.plan.steps),
            clock=self.clock,
            emit=self._emit_safely,
            stop=self.stop,
            write_channel=self.context.write_channel,
        )
        problems = await self._preflight(procedure)
        errors = [p for p in problems if p.is_error]
        if errors:
            return self._refused("preflight: " + "; ".join(str(p) for p in errors))

        recording = self._recording_plan(procedure)
        recorded = recording.to_manifest()
        if self.plan.derived:
            recorded["derived"] = {d.name: d.to_manifest() for d in self.plan.derived}
        fields = {**self.plan.manifest_fields, "recording": recorded}
        try:
            self.session.open(self.clock, fields)
        except Exception as exc:
            self._set_state(ConductorState.FAILED)
            if is_disk_full(exc):
                # Nothing was recorded and nothing is left behind, but this is a storage
                # failure, not a refusal: crashed (exit 2), one line naming the disk.
                return dataclasses.replace(
                    self._refused(f"{WRITER_FAILED}: {exc}"), outcome=RunOutcome.CRASHED
                )
            return self._refused(f"bundle_open: {exc}")
        self.context.bind_log(self.session.log.bind(procedure_id=self.plan.procedure.id))
        for p in problems:
            self.session.emit(
                "procedure.preflight.warning",
                str(p),
                severity="warning" if p.severity.value == "warning" else "info",
                source=f"procedure:{self.plan.procedure.id}",
            )
        for p in self.plan.profile_warnings:
            self.session.emit(
                "profile.preflight.warning",
                str(p),
                severity="warning" if p.severity.value == "warning" else "info",
                source="profile",
            )
        self.pipeline = ChannelPipeline(
            devices=self.plan.devices,
            channels=self.plan.channels,
            recording=recording,
            registry=self.registry,
            submit=self.session.submit,
            clock=self.clock,
            # A session of another make may not keep a ledger: the pipeline then counts
            # into its own (nothing reaches the manifest, but nothing fails either).
            ledger=getattr(self.session, "ledger", None),
            derived=self.plan.derived,
            monitor=self.safety,
        )
        self._arm()
        self.session.log.info("conductor.armed", devices=self.pool.device_names)

        try:
            await self._running(procedure)
        except Exception as exc:  # ExceptionGroup included; cancellation is not caught
            # Whatever escaped (a device whose start() raised inside the workers' task
            # group, a watcher that failed) ends the run crashed — drained and sealed,
            # with the real cause as exit_reason, never an ExceptionGroup out of run().
            self._run_failed(exc)
        finally:
            abandoned = await self._drain()
        return await self._finalize(abandoned)

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

    async def _preflight(self, procedure: Any) -> list[Problem]:
        try:
            return list(await procedure.preflight(self.context))
        except Exception as exc:
            from capa.problems import Severity

            return [
                Problem(
                    Severity.ERROR, "procedure.preflight_raised", "", f"{type(exc).__name__}: {exc}"
                )
            ]

    def _refused(self, reason: str) -> RunResult:
        if self.state is not ConductorState.FAILED:
            self._set_state(ConductorState.FAILED)
        return RunResult(
            run_id=self.session.run_id,
            bundle_path=self.session.bundle_path,
            outcome=RunOutcome.ABORTED,
            exit_reason=reason,
            final_state=self.state,
            bundle_status="none",
            integrity_status="unknown",
        )

    def _recording_plan(self, procedure: Any) -> RecordingPlan:
        channels = frozenset(self.plan.channel_names)
        devices = frozenset(d.name for d in self.plan.devices)
        plan = RecordingPlan(self.plan.recording_policy, channels, devices)
        narrow = getattr(procedure, "plan_capture", None)
        if self.plan.recording_policy == "procedure_default" and callable(narrow):
            plan = narrow(plan)
        return plan

    async def _running(self, procedure: Any) -> None:
        self._set_state(ConductorState.RUNNING)
        assert self.context is not None
        await self.pool.begin_sampling_all()
        self.session.log.info("conductor.running")
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(self._lag.run, self._lag_warning)
            if self._warnings is not None:
                watchers.start_soon(self._warnings.run)
            watchers.start_soon(self._watch_saturation)
            watchers.start_soon(self._watch_external_stop)
            watchers.start_soon(self._watch_writer)
            if self.safety is not None and self.safety.active:
                # Beside the procedure, not inside it: alarms act even when it is stuck.
                watchers.start_soon(self.safety.run)
            await self._run_procedure(procedure)
            watchers.cancel_scope.cancel()

    async def _run_procedure(self, procedure: Any) -> None:
        done = anyio.Event()
        assert self.context is not None
        ctx = self.context

        async def body(scope: anyio.CancelScope) -> None:
            with scope:
                try:
                    await procedure.run(ctx)
                except Exception as exc:
                    self._procedure_crashed(exc)
            done.set()

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(body, scope)
            async with anyio.create_task_group() as waiter:

                async def on_done() -> None:
                    await done.wait()
                    waiter.cancel_scope.cancel()

                async def on_stop() -> None:
                    await self._stop_requested.wait()
                    # The procedure sees external_stop and should return by itself; give
                    # it the grace period before cancelling it outright.
                    with anyio.move_on_after(self.config.shutdown_grace_s):
                        await done.wait()
                    if not done.is_set():
                        self.session.log.warning(
                            "conductor.procedure_cancelled", grace_s=self.config.shutdown_grace_s
                        )
                        scope.cancel()
                    waiter.cancel_scope.cancel()

                waiter.start_soon(on_done)
                waiter.start_soon(on_stop)

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

    async def _watch_saturation(self) -> None:
        trip = await watch_saturation(
            self.session,
            self.config.saturation_deadline_s,
            self.config.saturation_poll_period_s,
            blocked=self.pool.blocked_resources,
            on_stall=self._stall_warning,
        )
        self._saturation = trip
        self.session.log.error("conductor.saturation_escalation", **trip.metadata())
        # The writer is stuck: stop feeding it, so blocked producers return and the
        # run can drain; the event is written by finalize time if the writer recovers,
        # and is recorded in run.log and the manifest's exit_reason regardless.
        self.session.abandon_writer()
        self.stop("saturation_deadline")

    async def _watch_writer(self) -> None:
        error = await watch_writer_failure(self.session, self.config.saturation_poll_period_s)
        self._writer_failed(error)

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

    async def _watch_external_stop(self) -> None:
        await self.external_stop.wait()
        self.stop("operator_stop")

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

    async def _drain(self) -> list[str]:
        self._set_state(ConductorState.DRAINING)
        grace = self.config.shutdown_grace_s
        delay = _draining_delay_s()
        if delay:
            # Seed 000's documentation hook: hold DRAINING so tools can observe it.
            self.session.log.info("conductor.draining_delay", seconds=delay)
            with anyio.CancelScope(shield=True):
                await anyio.sleep(delay)
        with anyio.CancelScope(shield=True):  # draining must finish even if we are cancelled
            abandoned = await self.pool.stop_sampling_all(grace)
        for rid in abandoned:
            devices = self.pool.devices_on(rid)
            self.session.emit(
                "worker_adapter_error",
                f"worker {rid} did not stop within {grace:g} s; abandoned (hard stop)",
                severity="error",
                source=f"worker:{rid}",
                metadata={
                    "resource_id": rid,
                    "devices": devices,
                    "grace_s": grace,
                    "hard_stop": True,
                },
            )
            # A worker that cannot be stopped is a failure of its devices: their
            # on_failure decides whether the run still counts as completed.
            strict = [d for d in devices if self.plan.device(d).on_failure != "warn"]
            if strict:
                self._crash = self._crash or (
                    f"device {', '.join(strict)}: worker {rid} did not stop within "
                    f"{grace:g} s (abandoned)"
                )
        return abandoned

    async def _close_data_path(self, abandoned: list[str]) -> None:
        """Seal the pipeline: what devices emit from now on is counted ``after_stop``.

        An abandoned worker may keep emitting; its rows never reach the closing writer
        unaccounted. Rows already counted so get one warning event.
        """
        assert self.pipeline is not None
        pipeline = self.pipeline
        grace = self.config.shutdown_grace_s
        with anyio.CancelScope(shield=True):
            settled = await anyio.to_thread.run_sync(pipeline.seal, grace)
        if not settled:
            self.session.log.error("conductor.pipeline_busy_at_seal", grace_s=grace)
        late: dict[str, dict[str, int]] = {}
        for device, streams in pipeline.ledger.snapshot().items():
            for stream, c in streams.items():
                if c["dropped"].get("after_stop"):
                    late.setdefault(device, {})[stream] = c["dropped"]["after_stop"]
        if late or abandoned:
            # An abandoned worker may go on emitting until the process ends: its rows
            # are counted (counts.accounting ... dropped.after_stop), never written.
            try:
                self.session.emit(
                    "run.dropped_after_stop",
                    "rows emitted after sampling stopped are not recorded, only counted "
                    f"(so far: {late or 'none'}; still running: {abandoned or 'none'})",
                    severity="warning",
                    source="conductor",
                    metadata={"rows": late, "abandoned_workers": list(abandoned)},
                )
            except BundleError as exc:
                # A failed writer: the rows are in counts.accounting all the same.
                self.session.log.error("conductor.event_unrecorded", error=str(exc))

    def _device_summaries(
        self, abandoned: list[str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Each adapter's ``run_summary()``; cameras also get a manifest ``cameras`` entry."""
        devices: dict[str, Any] = {}
        cameras: list[dict[str, Any]] = []
        for name, adapter in self.pool.adapters():
            if self.plan.device(name).resource_id in abandoned:
                continue  # its worker is wedged: do not touch the adapter from here
            try:
                summary = dict(adapter.run_summary())
            except Exception as exc:
                summary = {"error": f"run_summary() raised {type(exc).__name__}: {exc}"}
            if summary:
                devices[name] = summary
            if "records_video" in adapter.capabilities:
                cameras.append({"device": name, **summary})
        return devices, cameras

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

    async def _finalize(self, abandoned: list[str]) -> RunResult:
        self._set_state(ConductorState.FINALIZING)
        await self._close_data_path(abandoned)
        if self._warnings is not None:
            await self._warnings.flush()
        outcome, reason = self._outcome()
        if self._saturation is not None:
            trip = self._saturation
            self.session.emit(
                "saturation_deadline",
                f"bundle writer made no progress for {trip.blocked_s:.1f} s; run stopped",
                severity="error",
                source="conductor",
                metadata=trip.metadata(),
            )
        assert self.clock is not None
        assert self.pipeline is not None
        diagnostics = {
            "loop_lag": self._lag.summary(),
            "workers": self.pool.diagnostics(),
            "abandoned_workers": abandoned,
            "device_errors": dict(self._device_errors),
        }
        devices, cameras = self._device_summaries(abandoned)
        extra = {
            # Rows per channel are counted by finalize from the files themselves.
            "counts": {
                "unmapped_batches": self.pipeline.stats.unmapped_batches,
                "devices": devices,
                **self._safety_counts(devices),
            },
            "cameras": cameras,
            "queue_health": {"runtime": diagnostics, **self.runtime_diagnostics()},
            "custom": dict(self.context.custom) if self.context else {},
        }
        ended = self.clock.now_ns()
        with anyio.CancelScope(shield=True):
            try:
                sealed = await anyio.to_thread.run_sync(self.session.close, outcome, reason, extra)
            except Exception as exc:
                self._set_state(ConductorState.FAILED)
                failure = f"finalize: {describe_failure(exc)}"
                # Keep the cause (a full disk) in front of the finalize failure it led to.
                exit_reason = f"{reason}; {failure}" if reason else failure
                bundle = self.session.bundle_path
                if self._writer_failure is None and bundle is not None and is_disk_full(exc):
                    # The disk filled up while sealing: say so in the words the CLI uses.
                    exit_reason = f"{WRITER_FAILED}: {describe_write_failure(bundle, exc)}; " + (
                        f"{failure} (run ended: {reason})" if reason else failure
                    )
                return RunResult(
                    run_id=self.session.run_id,
                    bundle_path=self.session.bundle_path,
                    outcome=RunOutcome.CRASHED,
                    exit_reason=exit_reason,
                    final_state=self.state,
                    started_mono_ns=0,
                    ended_mono_ns=ended,
                    bundle_status="open",
                    integrity_status="unknown",
                )
        if sealed.run_status is not None and sealed.run_status != outcome.run_status:
            # Storage recorded a different ending (the writer failed while closing).
            outcome = RunOutcome(sealed.run_status)
            reason = sealed.exit_reason or reason
        self._set_state(ConductorState.SEALED)
        return RunResult(
            run_id=self.session.run_id,
            bundle_path=self.session.bundle_path,
            outcome=outcome,
            exit_reason=reason,
            final_state=self.state,
            saturation_event=self._saturation.metadata() if self._saturation else None,
            started_mono_ns=0,
            ended_mono_ns=ended,
            bundle_status=sealed.bundle_status,
            integrity_status=sealed.integrity_status,
            diagnostics=diagnostics,
        )


def _draining_delay_s() -> float:
    """``CAPA_DRAINING_DELAY_S`` (seed 000): seconds to hold DRAINING; 0 when unset/bad."""
    import os

    try:
        return max(0.0, float(os.environ.get("CAPA_DRAINING_DELAY_S", "0")))
    except ValueError:
        return 0.0


def _stderr(text: str) -> None:
    import sys

    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: there is nowhere left to say it
        return


def _null_log() -> Any:
    import structlog

    return structlog.get_logger("capa.conductor")
