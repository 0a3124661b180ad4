"""The search loop of a heat-flux tune, its safety watchers, and its records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import capa
from capa_procedures.commands import write_recorded
from capa_procedures.errors import ProcedureError
from capa_procedures.heat_flux.artifact import copy_into_bundle, dumps_toml, write_new_file
from capa_procedures.heat_flux.config import HeatFluxTuneConfig
from capa_procedures.heat_flux.operator import COMMANDS, OperatorChannel
from capa_procedures.heat_flux.secant import Point, next_setpoint
from capa_procedures.heat_flux.steady import Measurement, SteadyWindow

__all__ = ["TuneAborted", "Tuner"]

_WAKE_S = 0.1  # longest the loop goes without checking stop, limits and the gauge
_COOL_DOWN_BOUND_S = 5.0


class TuneAborted(ProcedureError):
    """The tune stopped for safety or a limit; the heater was cooled down first."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"heat-flux tune aborted ({reason}): {message}")


class _Skipped(Exception):
    """The operator gave up the current target (``capa prompt tune RUN_ID skip``)."""


class Tuner:
    """One tune: the iterations over every target, for one run."""

    def __init__(
        self, ctx: capa.RunContext, config: HeatFluxTuneConfig, procedure_id: str, out_dir: Path
    ) -> None:
        self.ctx = ctx
        self.c = config
        self.procedure_id = procedure_id
        self.out_dir = out_dir
        self.points: list[Point] = []
        self.accepted: list[dict[str, Any]] = []
        self.iterations: list[dict[str, Any]] = []
        self.gain: float | None = None
        self.window = SteadyWindow(
            window_s=config.window_s,
            dwell_s=config.dwell_s,
            pv_band=config.pv_band,
            spread_cap=config.flux_spread_cap,
            slope_cap=config.flux_slope_cap,
        )
        self._started_s = 0.0
        self._last_flux_s = 0.0
        self._writes = 0
        self.skipped: list[dict[str, Any]] = []
        bundle = ctx.bundle_path
        self.operator = OperatorChannel(Path(bundle) if bundle is not None else None)

    def _now_s(self) -> float:
        return self.ctx.clock.now_ns() / 1e9

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        """Every target in order; see :class:`~capa_procedures.heat_flux.HeatFluxTune`."""
        c, events = self.c, self.ctx.events
        self._started_s = self._last_flux_s = self._now_s()
        events.emit(
            "heat_flux_tune.started",
            f"tuning {len(c.targets_kw_m2)} target(s): "
            + ", ".join(f"{t:g}" for t in c.targets_kw_m2)
            + " kW/m²",
            metadata={
                "targets_kw_m2": list(c.targets_kw_m2),
                "heater_channel": c.heater_channel,
                "flux_channel": c.flux_channel,
                "setpoint_ceiling": c.setpoint_ceiling,
            },
        )
        watched = [c.flux_channel, *([c.heater_pv_channel] if c.heater_pv_channel else [])]
        channels: Any = self.ctx.channels
        sub = channels.subscribe(watched, 4096)
        try:
            completed = await self._search(sub)
        except TuneAborted as exc:
            events.emit(
                "heat_flux_tune.aborted",
                str(exc),
                severity="error",
                metadata={"reason": exc.reason, "accepted": len(self.accepted)},
            )
            await self._cool_down(exc.reason)
            await self._write_artifact(complete=False, reason=exc.reason)
            raise
        finally:
            channels.unsubscribe(sub)
            # Shielded: a cancelled tune must not leave its command files to be sealed.
            with anyio.CancelScope(shield=True):
                await self.operator.close()
        if not completed:
            events.emit(
                "heat_flux_tune.aborted",
                "heat-flux tune stopped by the operator",
                severity="warning",
                metadata={"reason": "external_stop", "accepted": len(self.accepted)},
            )
            await self._cool_down("external_stop")
            await self._write_artifact(complete=False, reason="external_stop")
            return
        if c.cool_down_at_end:
            await self._cool_down("end")
        # A skipped target has no point: the artifact does not cover every target.
        complete = not self.skipped
        artifact, copy = await self._write_artifact(
            complete=complete, reason="completed" if complete else "completed_with_skipped"
        )
        skipped = f", {len(self.skipped)} skipped by the operator" if self.skipped else ""
        events.emit(
            "heat_flux_tune.completed",
            f"{len(self.accepted)} target(s) accepted{skipped}; artifact {artifact}",
            metadata={
                "artifact": str(artifact),
                "bundle_copy": str(copy) if copy else None,
                "points": self.accepted,
                "skipped": self.skipped,
            },
        )

    async def _search(self, sub: Any) -> bool:
        """All targets; ``False`` when the run was stopped."""
        c = self.c
        setpoint = c.initial_setpoint
        for n, target in enumerate(c.targets_kw_m2):
            if n > 0 and self.points:
                setpoint, self.gain = self._next(target)
            for iteration in range(1, c.max_iterations + 1):
                try:
                    measurement = await self._measure(sub, setpoint, target, iteration)
                except _Skipped:
                    break  # recorded by _operator_command; on to the next target
                if measurement is None:
                    return False
                if self._record(target, iteration, setpoint, measurement):
                    break
                new, self.gain = self._next(target)
                if new == setpoint:
                    raise TuneAborted(
                        "unreachable",
                        f"{target:g} kW/m² is out of reach: setpoint {setpoint:g} (limits "
                        f"{c.setpoint_floor:g}..{c.setpoint_ceiling:g}) gives "
                        f"{measurement.flux_mean:.4g} kW/m²",
                    )
                setpoint = new
            else:
                raise TuneAborted(
                    "max_iterations",
                    f"{target:g} kW/m² not reached in {c.max_iterations} iterations",
                )
        return True

    def _next(self, target: float) -> tuple[float, float | None]:
        c = self.c
        return next_setpoint(
            self.points,
            target,
            damping=c.damping,
            max_step=c.max_step,
            floor=c.setpoint_floor,
            ceiling=c.setpoint_ceiling,
            initial_gain=c.initial_gain,
            previous_gain=self.gain,
        )

    def _record(self, target: float, iteration: int, setpoint: float, m: Measurement) -> bool:
        """Record an iteration; ``True`` when it is accepted."""
        c, events = self.c, self.ctx.events
        self.points.append(Point(setpoint, m.flux_mean))
        error = m.flux_mean - target
        row = {
            "target_kw_m2": target,
            "iteration": iteration,
            "setpoint": setpoint,
            "flux_mean_kw_m2": m.flux_mean,
            "flux_std_kw_m2": m.flux_std,
            "flux_slope_kw_m2_per_s": m.flux_slope,
            "error_kw_m2": error,
            "samples": m.samples,
        }
        self.iterations.append(row)
        events.emit(
            "heat_flux_tune.iteration",
            f"target {target:g}: setpoint {setpoint:.4g} gives {m.flux_mean:.4g} kW/m² "
            f"(error {error:+.3g})",
            metadata=row,
        )
        if abs(error) > c.tolerance_kw_m2:
            return False
        reason = f"steady for {c.dwell_s:g} s and within ±{c.tolerance_kw_m2:g} kW/m²"
        point = {**row, "accept_reason": reason}
        self.accepted.append(point)
        events.emit(
            "heat_flux_tune.target_accepted",
            f"{target:g} kW/m² at setpoint {setpoint:.4g} ({reason})",
            metadata=point,
        )
        return True

    # ------------------------------------------------------------------ one iteration
    async def _measure(
        self, sub: Any, setpoint: float, target: float, iteration: int
    ) -> Measurement | None:
        """Write the setpoint and wait for a steady measurement (``None``: stopped)."""
        c = self.c
        await self._write(setpoint, "iteration")
        begin = self._now_s()
        self.window.reset(begin)
        self.ctx.progress["step"] = f"target {target:g} kW/m² · iteration {iteration}"
        self.ctx.events.emit(
            "heat_flux_tune.holding",
            f"holding setpoint {setpoint:.4g} for target {target:g} kW/m²",
            metadata={"target_kw_m2": target, "iteration": iteration, "setpoint": setpoint},
        )
        await self.operator.publish(
            {"target_kw_m2": target, "iteration": iteration, "setpoint": setpoint}
        )
        stop = self.ctx.external_stop
        while not stop.is_set():
            now = self._now_s()
            command = await self.operator.poll(now)
            if command is not None:
                self._operator_command(command, target, iteration, setpoint)
            if now - begin > c.settle_timeout_s:
                raise TuneAborted(
                    "settle_timeout", f"no steady state within {c.settle_timeout_s:g} s"
                )
            if now - self._started_s > c.max_total_s:
                raise TuneAborted("max_total_s", f"tune exceeded {c.max_total_s:g} s")
            if now - self._last_flux_s > c.silent_gauge_s:
                raise TuneAborted(
                    "silent_gauge",
                    f"no value from {c.flux_channel!r} for {now - self._last_flux_s:.1f} s",
                )
            with anyio.move_on_after(_WAKE_S):
                self._take([await sub.get(), *sub.drain()])
            measurement = self.window.accepted(self._now_s())
            if measurement is not None:
                return measurement
        return None

    def _operator_command(
        self, command: dict[str, Any], target: float, iteration: int, setpoint: float
    ) -> None:
        """Record the operator's command; raise :class:`_Skipped` for ``skip``."""
        name = str(command.get("command", ""))
        by = str(command.get("by", "") or "unknown")
        meta = {
            "command": name,
            "by": by,
            "issued_utc": command.get("issued_utc"),
            "target_kw_m2": target,
            "iteration": iteration,
            "setpoint": setpoint,
        }
        if name not in COMMANDS:
            self.ctx.events.emit(
                "heat_flux_tune.operator_command",
                f"ignored unknown operator command {name!r} from {by}",
                severity="warning",
                metadata={**meta, "outcome": "ignored"},
            )
            return
        self.ctx.events.emit(
            "heat_flux_tune.operator_command",
            f"{by}: skip target {target:g} kW/m² at iteration {iteration} "
            f"(setpoint {setpoint:.4g})",
            metadata={**meta, "outcome": "skipped"},
        )
        self.skipped.append({"target_kw_m2": target, "iteration": iteration, "by": by})
        raise _Skipped

    def _take(self, items: list[tuple[str, int, float]]) -> None:
        c = self.c
        for channel, t_ns, value in items:
            t = t_ns / 1e9
            if channel == c.flux_channel:
                self._last_flux_s = max(self._last_flux_s, t)
                if c.runaway_flux_kw_m2 is not None and value > c.runaway_flux_kw_m2:
                    raise TuneAborted(
                        "runaway",
                        f"{channel} = {value:.4g} kW/m² above runaway_flux_kw_m2 "
                        f"{c.runaway_flux_kw_m2:g}",
                    )
                self.window.add_flux(t, value)
            else:
                limit = c.setpoint_ceiling + c.runaway_pv_margin
                if value > limit:
                    raise TuneAborted(
                        "runaway", f"{channel} = {value:.4g} above ceiling + margin {limit:g}"
                    )
                self.window.add_pv(t, value)

    # ------------------------------------------------------------------ writes and files
    async def _write(self, value: float, why: str) -> capa.CommandResult:
        c = self.c
        if value > c.setpoint_ceiling:  # the hard limit, whatever computed the value
            raise TuneAborted("ceiling", f"refusing setpoint {value:g} > {c.setpoint_ceiling:g}")
        self._writes += 1
        result = await write_recorded(
            self.ctx,
            c.heater_channel,
            value,
            event_kind="heat_flux_tune.command.issued",
            step_kind=why,
            issued_by=f"procedure:{self.procedure_id}",
            authorization_id=f"{self.ctx.run_id}:heat_flux_tune:{self._writes}",
        )
        if not result.accepted and why != "cool_down":
            raise TuneAborted("write_refused", f"heater refused {value:g}: {result.detail}")
        return result

    async def _cool_down(self, reason: str) -> None:
        """Write the cool-down setpoint; shielded and bounded, never raising."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_COOL_DOWN_BOUND_S):
            try:
                await self._write(self.c.cool_down_setpoint, "cool_down")
            except Exception as exc:
                self.ctx.events.emit(
                    "heat_flux_tune.cool_down_failed",
                    f"cool-down to {self.c.cool_down_setpoint:g} failed ({reason}): {exc}",
                    severity="error",
                    metadata={"reason": reason},
                )

    async def _write_artifact(self, *, complete: bool, reason: str) -> tuple[Path, Path | None]:
        c, ctx = self.c, self.ctx
        plan: Any = getattr(ctx, "plan", None)
        rig = str(getattr(plan, "hardware_name", "") or "rig")
        now = datetime.now(UTC)
        text = dumps_toml(
            "capa heat-flux tune (capa.builtin.heat_flux_tune)",
            {
                "tune": {
                    "created_utc": now.isoformat(),
                    "run_id": ctx.run_id,
                    "rig": rig,
                    "complete": complete,
                    "end_reason": reason,
                },
                "channels": {
                    "heater": c.heater_channel,
                    "heater_pv": c.heater_pv_channel,
                    "flux": c.flux_channel,
                },
                "settings": {
                    "tolerance_kw_m2": c.tolerance_kw_m2,
                    "window_s": c.window_s,
                    "dwell_s": c.dwell_s,
                    "pv_band": c.pv_band,
                    "flux_spread_cap": c.flux_spread_cap,
                    "flux_slope_cap": c.flux_slope_cap,
                    "damping": c.damping,
                    "max_step": c.max_step,
                    "setpoint_ceiling": c.setpoint_ceiling,
                },
            },
            {"points": self.accepted, "iterations": self.iterations, "skipped": self.skipped},
        )
        safe_rig = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in rig)
        path = await anyio.to_thread.run_sync(
            write_new_file, self.out_dir, f"heat_flux_tune_{safe_rig}", text, now
        )
        copy = None
        if ctx.bundle_path is not None:
            copy = await anyio.to_thread.run_sync(copy_into_bundle, path, ctx.bundle_path)
        ctx.events.emit(
            "heat_flux_tune.artifact",
            f"tune artifact written to {path}",
            metadata={"artifact": str(path), "bundle_copy": str(copy) if copy else None},
        )
        return path, copy
