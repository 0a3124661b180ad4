"""The rig the console drives: experiment, worker pool, runs, manual commands.

The run itself happens on the rig's own thread and event loop (an anyio blocking
portal), never on the web server's loop: a busy page cannot delay the conductor, and a
busy run cannot freeze the page. The web side talks to the rig only through
thread-safe calls (``call_soon_threadsafe``, portal futures) and reads it through the
:class:`~capa_gui.bridge.DisplayBridge`.

``capa run --serve`` uses the same object in *attached* mode: the run belongs to
``capa run``; the console may only stop it and answer its prompts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

import capa
import capa.embed
from capa.runtime import (
    Conductor,
    HeadlessResult,
    ManualClient,
    RealRunSession,
    RunOutcome,
    RunPlan,
    WorkerPool,
)
from capa_gui.bridge import DisplayBridge, ObservedSession
from capa_gui.frames import FrameBuilder, channel_meta
from capa_gui.prompts import acknowledge, pending_prompt

__all__ = ["Rig", "RigError"]


class RigError(capa.CapaError):
    """A console action that cannot be done now (shown to the operator, HTTP 409)."""

    exit_code = 2


def _step_rows(plan: RunPlan | None, report: Any = None) -> list[dict[str, Any]]:
    steps: Any = plan.steps if plan is not None else ()
    if not steps and report is not None and report.method is not None:
        steps = [s.step for s in report.method.steps]
    rows = []
    for i, step in enumerate(steps):
        config = getattr(step, "config", None)
        data = config.model_dump(mode="json") if config is not None else {}
        duration = data.get("duration_s")
        if duration is None and step.kind == "prompt":
            duration = data.get("timeout_s")
        if duration is None and step.kind == "wait":
            duration = data.get("timeout_s")
        rows.append(
            {
                "index": i,
                "kind": step.kind,
                "duration_s": duration,
                "config": data,
            }
        )
    return rows


class Rig:
    """One experiment's devices and runs, as the console sees them.

    Args:
        host: the loaded plugin host (trust rules applied).
        runs_root: where bundles go.
        read_only: attached to someone else's run (``capa run --serve``): no start,
            no manual commands, no configuration changes.
    """

    def __init__(self, host: Any, runs_root: Path, *, read_only: bool = False) -> None:
        self.host = host
        self.runs_root = runs_root
        self.read_only = read_only
        self.config_path: Path | None = None
        self.report: Any = None
        self.plan: RunPlan | None = None
        self.problems: list[dict[str, Any]] = []
        self.bridge = DisplayBridge()
        self.frames = FrameBuilder(())
        self.pool: WorkerPool | None = None
        self.conductor: Conductor | None = None
        self.session: ObservedSession | None = None
        self.last_result: HeadlessResult | None = None
        self.last_error: str | None = None
        self.runs_started = 0
        self.step_entered: dict[int, float] = {}
        self.force_requested = False
        self._run_loop: asyncio.AbstractEventLoop | None = None
        self._run_future: concurrent.futures.Future[Any] | None = None
        self._portal_cm: Any = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._lock = threading.Lock()
        self.loop_lag_ms = 0.0
        self.loop_lag_max_ms = 0.0
        self._manual: ManualClient | None = None

    # ------------------------------------------------------------------ lifecycle
    def start_loop(self) -> None:
        """Start the rig's own thread and event loop (``capa gui``)."""
        if self._portal is None:
            self._portal_cm = anyio.from_thread.start_blocking_portal()
            self._portal = self._portal_cm.__enter__()

    def shutdown(self) -> None:
        """Stop a run still going (gracefully), close the devices, stop the rig's loop."""
        portal = self._portal
        if portal is None:
            return
        if self.conductor is not None and not self.conductor.state.terminal:
            self.request_stop("console_quit")
        if self._run_future is not None:
            with contextlib.suppress(Exception):
                self._run_future.result(timeout=60)
        if self.pool is not None:
            with contextlib.suppress(Exception):
                portal.call(self._close_pool)
        self._portal = None
        self._portal_cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ configuration
    def load(self, path: Path) -> bool:
        """Validate ``path`` as ``capa validate`` would; keep its plan when it is clean."""
        if self.busy:
            raise RigError("a run is in progress; stop it before opening another experiment")
        if self.pool is not None and self._portal is not None:
            self._portal.call(self._close_pool)
        report = capa.embed.validate_experiment(path, self.host)
        self.config_path = path
        self.report = report
        self.problems = [
            {
                "severity": p.severity.value,
                "code": p.code,
                "path": p.path,
                "message": p.message,
                "source": p.source,
                "line": p.line,
                "text": capa.embed.problem_line(p),
            }
            for p in report.problems
        ]
        self.plan = capa.embed.plan_from_report(report, self.host) if report.ok else None
        if self.plan is not None:
            self.frames = FrameBuilder(self.plan.channel_names)
        return self.plan is not None

    def attach_plan(self, plan: RunPlan) -> None:
        """Use an already-resolved plan (``capa run --serve``)."""
        self.plan = plan
        self.config_path = plan.source
        self.frames = FrameBuilder(plan.channel_names)

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """Whether a run is going on (from start request to sealed bundle)."""
        return self._run_future is not None and not self._run_future.done()

    def meta(self) -> dict[str, Any]:
        """What the page needs once: channels, groups, devices, steps, mode."""
        plan = self.plan
        devices = []
        if plan is not None:
            devices = [
                {
                    "name": d.name,
                    "adapter": d.adapter.id,
                    "resource_id": d.resource_id,
                    "capabilities": sorted(d.adapter.capabilities),
                    "writable": sorted(d.adapter.writable_fields(d.params)),
                }
                for d in plan.devices
            ]
        return {
            "config": str(self.config_path) if self.config_path else None,
            "runs_root": str(self.runs_root),
            "read_only": self.read_only,
            "rig": plan.hardware_name if plan is not None else None,
            "procedure": plan.procedure.id if plan is not None else None,
            "channels": channel_meta(plan) if plan is not None else [],
            "devices": devices,
            "steps": _step_rows(plan, self.report),
            "problems": self.problems,
            "production": capa.embed.is_production(),
        }

    def status(self) -> dict[str, Any]:
        """The run's state, progress and health, cheap enough for every frame."""
        conductor = self.conductor
        state = "no_experiment" if self.plan is None else "idle"
        if self.pool is not None:
            state = "connected"
        progress: dict[str, Any] = {}
        if conductor is not None and (self.busy or self.read_only):
            state = conductor.state.value
            with contextlib.suppress(Exception):  # the run may be between states
                progress = conductor.progress()
            progress.pop("latest", None)
        elif self.busy:
            state = "starting"
        health = self._health()
        result = self.last_result
        step = progress.get("step")
        step_info = self._step_info(step, progress.get("elapsed_s"))
        return {
            "state": state,
            "busy": self.busy,
            "run_id": self.session.run_id if self.session is not None else None,
            "bundle": (
                str(self.session.bundle_path)
                if self.session is not None and self.session.bundle_path
                else None
            ),
            "elapsed_s": progress.get("elapsed_s"),
            "rows": progress.get("rows"),
            "step": step,
            "step_info": step_info,
            "pool_open": self.pool is not None,
            "health": health,
            "force_available": self.busy and self._stop_requested(),
            "last_error": self.last_error,
            "result": None
            if result is None
            else {
                "run_id": result.run_id,
                "bundle": str(result.bundle_path) if result.bundle_path else None,
                "run_status": result.run_status,
                "bundle_status": result.bundle_status,
                "integrity_status": result.integrity_status,
                "exit_reason": result.exit_reason,
                "exit_code": result.exit_code(),
            },
        }

    def _stop_requested(self) -> bool:
        conductor = self.conductor
        return conductor is not None and conductor.external_stop.is_set()

    def _step_info(self, step: Any, elapsed: Any) -> dict[str, Any] | None:
        if not isinstance(step, str) or elapsed is None:
            return None
        try:
            index = int(step.split("/", 1)[0]) - 1
        except ValueError:
            return None
        rows = _step_rows(self.plan)
        if not 0 <= index < len(rows):
            return None
        entered = self.step_entered.get(index)
        in_step = None if entered is None else max(0.0, float(elapsed) - entered)
        duration = rows[index]["duration_s"]
        left = None
        if duration is not None and in_step is not None:
            left = max(0.0, float(duration) - in_step)
        return {
            "index": index,
            "kind": rows[index]["kind"],
            "in_step_s": in_step,
            "duration_s": duration,
            "left_s": left,
        }

    def _health(self) -> dict[str, Any]:
        session = self.session
        metrics = None
        if session is not None:
            with contextlib.suppress(Exception):
                metrics = session.metrics()
        deadline = self.plan.runtime.saturation_deadline_s if self.plan is not None else 10.0
        blocked_s = 0.0
        if metrics is not None and metrics.queue_depth > 0 and metrics.last_accept_mono_ns:
            blocked_s = max(0.0, (time.monotonic_ns() - metrics.last_accept_mono_ns) / 1e9)
        counts = self.frames.event_counts
        return {
            "queue_depth": metrics.queue_depth if metrics else 0,
            "queue_capacity": metrics.queue_capacity if metrics else 0,
            "queue_high_water": metrics.queue_high_water if metrics else 0,
            "saturation_pct": round(100.0 * min(1.0, blocked_s / deadline), 1) if deadline else 0,
            "writer_rows": metrics.rows if metrics else 0,
            "dropped_rows": metrics.dropped_rows if metrics else 0,
            "loop_lag_ms": round(self.loop_lag_ms, 1),
            "loop_lag_max_ms": round(self.loop_lag_max_ms, 1),
            "device_errors": sum(v for k, v in counts.items() if k == "worker_adapter_error"),
            "reconnects": sum(v for k, v in counts.items() if "reconnect" in k),
            "display_dropped": self.bridge.dropped,
            "display_events_dropped": self.bridge.events_dropped,
        }

    def probe_loop_lag(self) -> None:
        """Measure how late the run's loop runs a callback (called from the web loop)."""
        loop = self._run_loop
        if loop is None or loop.is_closed():
            return
        sent = time.perf_counter()

        def arrived() -> None:
            lag = (time.perf_counter() - sent) * 1000.0
            self.loop_lag_ms = lag
            self.loop_lag_max_ms = max(self.loop_lag_max_ms * 0.98, lag)

        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(arrived)

    # ------------------------------------------------------------------ frames
    def next_frame(self) -> dict[str, Any]:
        """Fold what the bridge holds into a display frame (web loop)."""
        items = self.bridge.take_all()
        self.frames.add(items)
        frame = self.frames.frame()
        for event in frame["events"]:
            if event["kind"] == "method.step.entered":
                index = event["metadata"].get("index")
                if not isinstance(index, int):
                    continue
                if event["t_s"] is not None:  # the event's own run-clock time
                    self.step_entered[index] = float(event["t_s"])
                elif self.conductor is not None:
                    with contextlib.suppress(Exception):  # between states: skip this one
                        self.step_entered[index] = self.conductor.progress()["elapsed_s"]
        return frame

    # ------------------------------------------------------------------ runs
    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise RigError(f"{what} is not available: this console only watches the run")

    def start_run(self) -> None:
        """Start a run of the loaded experiment on the rig's loop (returns at once)."""
        self._require_writable("starting a run")
        if self.plan is None:
            raise RigError("no valid experiment is loaded (see Setup)")
        if self.busy:
            raise RigError("a run is already in progress")
        if self._portal is None:
            raise RigError("the rig's loop is not running")
        self.last_error = None
        self.force_requested = False
        self.step_entered = {}
        self.frames = FrameBuilder(self.plan.channel_names)
        self.bridge.take_all()
        self.runs_started += 1
        self._run_future = self._portal.start_task_soon(self._run)

    async def _open_pool(self) -> WorkerPool:
        assert self.plan is not None
        if self.pool is None:
            pool = WorkerPool(self.plan.devices)
            await pool.open()
            self.pool = pool
            self._manual = ManualClient(
                pool,
                lambda: self.conductor,
                command_timeout_s=self.plan.runtime.command_timeout_s,
            )
        self._run_loop = asyncio.get_running_loop()
        return self.pool

    async def _close_pool(self) -> None:
        pool, self.pool, self._manual = self.pool, None, None
        if pool is not None:
            grace = self.plan.runtime.shutdown_grace_s if self.plan is not None else 5.0
            await pool.close(grace)

    async def _run(self) -> None:
        plan = self.plan
        assert plan is not None
        try:
            pool = await self._open_pool()
        except capa.DeviceError as exc:
            self.last_error = f"pool_open: {exc}"
            self.last_result = HeadlessResult(
                "", None, "aborted", "none", "unknown", f"pool_open: {exc}"
            )
            return
        inner = RealRunSession(
            self.runs_root, config_files=plan.config_files, config_path=plan.source
        )
        session = ObservedSession(inner, self.bridge)
        conductor = Conductor(plan=plan, pool=pool, session=session, host=self.host)
        self.session = session
        self.conductor = conductor
        try:
            result = await conductor.run()
        except anyio.get_cancelled_exc_class():
            # Forced stop: the conductor drained its workers (shielded) but did not
            # finalize; seal what reached disk so the bundle is still complete.
            with anyio.CancelScope(shield=True):
                await self._seal_after_force(session)
            raise
        self.last_result = HeadlessResult(
            run_id=result.run_id,
            bundle_path=result.bundle_path,
            run_status=result.outcome.run_status,
            bundle_status=result.bundle_status,
            integrity_status=result.integrity_status,
            exit_reason=result.exit_reason,
        )

    async def _seal_after_force(self, session: ObservedSession) -> None:
        if session.bundle_path is None:
            self.last_result = HeadlessResult(
                "", None, "aborted", "none", "unknown", "operator_force_stop"
            )
            return
        try:
            await self.pool_stop_sampling()
            sealed = await anyio.to_thread.run_sync(
                session.close, RunOutcome.ABORTED, "operator_force_stop", {}
            )
            self.last_result = HeadlessResult(
                session.run_id,
                session.bundle_path,
                "aborted",
                sealed.bundle_status,
                sealed.integrity_status,
                "operator_force_stop",
            )
        except Exception as exc:
            self.last_error = f"force stop: sealing failed: {type(exc).__name__}: {exc}"
            self.last_result = HeadlessResult(
                session.run_id,
                session.bundle_path,
                "aborted",
                "open",
                "unknown",
                f"operator_force_stop; seal failed ({exc}); run `capa finalize {session.run_id}`",
            )

    async def pool_stop_sampling(self) -> None:
        """Make sure no worker still samples into a bundle being sealed."""
        if self.pool is not None:
            grace = self.plan.runtime.shutdown_grace_s if self.plan is not None else 5.0
            await self.pool.stop_sampling_all(grace)

    def request_stop(self, reason: str = "operator_stop") -> None:
        """Ask the run to stop gracefully (any thread)."""
        conductor = self.conductor
        loop = self._run_loop
        if conductor is None or loop is None or conductor.state.terminal:
            raise RigError("no run is in progress")
        loop.call_soon_threadsafe(conductor.stop, reason)

    def force_stop(self) -> None:
        """Cancel the run now; what reached disk is sealed as ``aborted``."""
        self._require_writable("force stop")
        if not self.busy or self._run_future is None:
            raise RigError("no run is in progress")
        if not self._stop_requested():
            raise RigError("ask for a graceful stop first; force is for a stop that hangs")
        self.force_requested = True
        self._run_future.cancel()

    def wait_run(self, timeout: float | None = None) -> None:
        """Block until the current run has ended (tests, quit)."""
        if self._run_future is not None:
            with contextlib.suppress(concurrent.futures.CancelledError):
                self._run_future.result(timeout)

    # ------------------------------------------------------------------ devices
    def connect(self) -> None:
        """Open the devices (for manual commands between runs)."""
        self._require_writable("connecting")
        if self.plan is None:
            raise RigError("no valid experiment is loaded (see Setup)")
        if self._portal is None:
            raise RigError("the rig's loop is not running")
        self._portal.call(self._open_pool)

    def disconnect(self) -> None:
        """Close the devices between runs."""
        self._require_writable("disconnecting")
        if self.busy:
            raise RigError("a run is in progress")
        if self._portal is not None:
            self._portal.call(self._close_pool)

    async def command(
        self, device: str, name: str, args: dict[str, Any], confirmed_by: str
    ) -> dict[str, Any]:
        """Send a manual command: through the run when one is going on, else the pool."""
        self._require_writable("a manual command")
        manual, portal = self._manual, self._portal
        if manual is None or portal is None:
            raise RigError("devices are not connected: press Connect (or start a run) first")
        cmd = capa.Command(name, args, authorization_id=f"console:{confirmed_by}")
        call = functools.partial(manual.dispatch, device, cmd, confirmed_by=confirmed_by)
        future = portal.start_task_soon(call)
        result = await asyncio.wrap_future(future)
        via = "run" if self.busy else "pool"
        return {
            "accepted": result.accepted,
            "detail": result.detail,
            "value": None if result.value is None else str(result.value),
            "via": via,
        }

    async def handshake_all(self) -> list[dict[str, Any]]:
        """Handshake every device read-only (adapter ``handshake``); needs the pool closed."""
        self._require_writable("handshakes")
        report = self.report
        if report is None or report.hardware is None:
            raise RigError("no experiment with a valid hardware file is loaded")
        if self.pool is not None:
            raise RigError("devices are open (connected or running); disconnect first")
        portal = self._portal
        if portal is None:
            raise RigError("the rig's loop is not running")
        devices = sorted(report.hardware.devices.values(), key=lambda d: d.index)

        async def one(dev: Any) -> dict[str, Any]:
            try:
                with anyio.fail_after(15):
                    res = await dev.cls.handshake(dev.params)
                return {
                    "device": dev.config.name,
                    "adapter": dev.cls.id,
                    "ok": bool(res.ok),
                    "detail": res.detail,
                    "identity": {str(k): str(v) for k, v in dict(res.identity).items()},
                }
            except TimeoutError:
                error = "no answer within 15 s"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            return {
                "device": dev.config.name,
                "adapter": dev.cls.id,
                "ok": False,
                "detail": error,
                "identity": {},
            }

        async def all_of() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = [{} for _ in devices]

            async def put(i: int, dev: Any) -> None:
                out[i] = await one(dev)

            async with anyio.create_task_group() as tg:
                for i, dev in enumerate(devices):
                    tg.start_soon(put, i, dev)
            return out

        return await asyncio.wrap_future(portal.start_task_soon(all_of))

    # ------------------------------------------------------------------ prompts
    def pending_prompt(self) -> dict[str, Any] | None:
        """The prompt the run waits on, if any (blocking file read: call off the loop)."""
        session = self.session
        if session is None or session.bundle_path is None or not self.busy_or_attached():
            return None
        return pending_prompt(session.bundle_path)

    def busy_or_attached(self) -> bool:
        """A run is going on (started here, or the attached ``capa run``)."""
        if self.read_only:
            return self.conductor is not None and not self.conductor.state.terminal
        return self.busy

    def acknowledge(self, step: int, by: str) -> dict[str, Any]:
        """Acknowledge prompt ``step`` as ``by`` (what ``capa prompt ack`` writes)."""
        session = self.session
        if session is None or session.bundle_path is None:
            raise RigError("no run is in progress")
        return acknowledge(session.bundle_path, step, by)

    # ------------------------------------------------------------------ attached mode
    def attach(self, conductor: Conductor) -> None:
        """Watch ``conductor`` (``capa run --serve``): observe its session, note its loop.

        Called on the run's loop before the conductor runs.
        """
        session = ObservedSession(conductor.session, self.bridge)
        conductor.session = session
        self.session = session
        self.conductor = conductor
        self._run_loop = asyncio.get_running_loop()

    def on_attached_result(self, result: HeadlessResult) -> None:
        """Record how the watched run ended."""
        self.last_result = result


ConductorHook = Callable[[Conductor], None]
