"""``capa.builtin.heat_flux_tune``: the procedure (preflight, run, abort and cool-down)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import capa
from capa_procedures.heat_flux.config import HeatFluxTuneConfig
from capa_procedures.heat_flux.tuner import Tuner

__all__ = ["HeatFluxTune"]


class HeatFluxTune(capa.Procedure):
    """For each target heat flux, find the heater setpoint that delivers it.

    Each iteration writes a setpoint, waits for a steady state (sliding window: heater PV
    within a band, robust flux spread and flux slope below caps, held for a dwell time),
    and moves the setpoint by a damped secant step clamped to ``max_step``, until the mean
    flux is within tolerance. Aborts — cooling the heater down first — on a runaway (flux
    or heater PV too high), a silent gauge, or an iteration / time limit; writes a dated
    TOML tune artifact and copies it into the bundle.
    """

    id = "capa.builtin.heat_flux_tune"
    name = "Heat-flux tune"
    Config = HeatFluxTuneConfig
    uses_method = False

    async def preflight(self, ctx: capa.RunContext) -> list[capa.Problem]:
        """Channels exist (the heater's is writable); limits agree with the ceiling."""
        assert isinstance(self.config, HeatFluxTuneConfig)
        c = self.config
        problems: list[capa.Problem] = []

        def error(code: str, path: str, message: str) -> None:
            problems.append(capa.Problem(capa.Severity.ERROR, code, path, message))

        names = set(ctx.channels.names())
        plan: Any = getattr(ctx, "plan", None)
        for field, channel in (
            ("heater_channel", c.heater_channel),
            ("flux_channel", c.flux_channel),
            ("heater_pv_channel", c.heater_pv_channel),
        ):
            if channel is not None and channel not in names:
                error(
                    "heat_flux_tune.channel_unknown",
                    f"procedure.config.{field}",
                    f"channel {channel!r} is not in the hardware; channels: "
                    + ", ".join(sorted(names)),
                )
        heater = plan.channel(c.heater_channel) if plan is not None else None
        if heater is not None and not heater.writable:
            error(
                "heat_flux_tune.heater_not_writable",
                "procedure.config.heater_channel",
                f"channel {c.heater_channel!r} ({heater.device}.{heater.field}) is not writable",
            )
        for field, value in (
            ("initial_setpoint", c.initial_setpoint),
            ("cool_down_setpoint", c.cool_down_setpoint),
        ):
            if value > c.setpoint_ceiling:
                error(
                    "heat_flux_tune.above_ceiling",
                    f"procedure.config.{field}",
                    f"{field} {value:g} is above setpoint_ceiling {c.setpoint_ceiling:g}",
                )
        if c.initial_setpoint < c.setpoint_floor:
            error(
                "heat_flux_tune.below_floor",
                "procedure.config.initial_setpoint",
                f"initial_setpoint {c.initial_setpoint:g} is below setpoint_floor "
                f"{c.setpoint_floor:g}",
            )
        return problems

    async def run(self, ctx: capa.RunContext) -> None:
        """Tune every target; raise (crashed) on an abort, return on an external stop."""
        assert isinstance(self.config, HeatFluxTuneConfig)
        await Tuner(ctx, self.config, self.id, _artifact_dir(ctx, self.config)).run()


def _artifact_dir(ctx: capa.RunContext, config: HeatFluxTuneConfig) -> Path:
    """``artifact_dir``, relative to the experiment file's directory when relative."""
    path = Path(config.artifact_dir).expanduser()
    if path.is_absolute():
        return path
    source = getattr(getattr(ctx, "plan", None), "source", None)
    base = Path(source).parent if source else Path.cwd()
    return base / path
