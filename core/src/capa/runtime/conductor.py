"""The conductor: one run, from preflight to a sealed bundle.

``PREPARING → RUNNING → DRAINING → FINALIZING → SEALED`` (or ``FAILED``). The conductor
runs on the caller's event loop (anyio, asyncio backend); device I/O happens on the
workers' threads. Whatever happens — a procedure that raises, a device that hangs, a writer
that stalls, an operator's Ctrl-C — the conductor drains what it can and seals the bundle.

This module sequences the run. How failures are recorded and add up to the outcome is
:mod:`capa.runtime.conductor_failures`; closing the data path and the finalize-time
summaries, :mod:`capa.runtime.finish`; child runs, :mod:`capa.runtime.child_run`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from capa.bundle.space import describe_write_failure, is_disk_full
from capa.clock import RunClock
from capa.components.adapter import Command, CommandResult
from capa.errors import ConductorStateError
from capa.problems import Problem
from capa.runtime.channels import ChannelRegistry
from capa.runtime.conductor_failures import WRITER_FAILED, FailureHandlers
from capa.runtime.context import ConductorRunContext
from capa.runtime.failures import describe_failure
from capa.runtime.finish import (
    close_data_path,
    device_summaries,
    draining_delay_s,
    safety_counts,
)
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
from capa.runtime.wide import streamed_devices

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["WRITER_FAILED", "Conductor", "ConductorConfig"]


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


class Conductor(FailureHandlers):
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
        from capa.runtime.child_run import run_child

        return await run_child(self, procedure_id, config, sample_id=sample_id, custom=custom)

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
            # The layout is the adapter *instance's* (a DAQ is streamed or polled by its
            # params); the pool built the instances, so it is known before sampling.
            streamed=streamed_devices(self.pool.adapters()),
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

    async def _watch_external_stop(self) -> None:
        await self.external_stop.wait()
        self.stop("operator_stop")

    async def _drain(self) -> list[str]:
        self._set_state(ConductorState.DRAINING)
        grace = self.config.shutdown_grace_s
        delay = draining_delay_s()
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

    async def _finalize(self, abandoned: list[str]) -> RunResult:
        self._set_state(ConductorState.FINALIZING)
        assert self.pipeline is not None
        await close_data_path(self.pipeline, self.session, self.config.shutdown_grace_s, abandoned)
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
        devices, cameras = device_summaries(self.pool, self.plan, abandoned)
        extra = {
            # Rows per channel are counted by finalize from the files themselves.
            "counts": {
                "unmapped_batches": self.pipeline.stats.unmapped_batches,
                "devices": devices,
                **safety_counts(self.safety, devices),
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


def _null_log() -> Any:
    import structlog

    return structlog.get_logger("capa.conductor")
