"""Configuration of ``capa.builtin.heat_flux_tune``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

import capa
from capa_procedures.steps.base import MAX_DURATION_S

__all__ = ["HeatFluxTuneConfig"]

_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Seconds = Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)]


class HeatFluxTuneConfig(capa.ConfigModel):
    """Options of a heat-flux tune (``procedure.config``).

    Setpoints are in the heater channel's unit, fluxes in kW/m² (the flux channel's
    calibrated unit).
    """

    heater_channel: str = Field(min_length=1, description="Writable heater setpoint channel.")
    heater_pv_channel: str | None = Field(
        default=None, description="Heater process value (steady-state band, runaway check)."
    )
    flux_channel: str = Field(min_length=1, description="Heat-flux gauge channel (kW/m²).")
    targets_kw_m2: list[_Positive] = Field(min_length=1, description="Target fluxes, in order.")
    initial_setpoint: _Finite = Field(description="Setpoint of the first iteration.")
    setpoint_ceiling: _Finite = Field(description="Hard upper limit; never written above.")
    setpoint_floor: _Finite = Field(default=0.0, description="Lower limit of the search.")
    initial_gain: _Positive | None = Field(
        default=None,
        description="Flux per setpoint unit used before two points exist; default: the "
        "first point's flux / setpoint.",
    )
    tolerance_kw_m2: _Positive = Field(default=0.5, description="Accept within ± this.")
    damping: float = Field(default=0.7, gt=0, le=1, description="Fraction of a secant step.")
    max_step: _Positive = Field(default=50.0, description="Largest setpoint change at once.")
    window_s: _Seconds = Field(default=60.0, description="Sliding steady-state window.")
    dwell_s: float = Field(
        default=30.0, ge=0, le=MAX_DURATION_S, description="Steady this long to accept."
    )
    pv_band: _Positive = Field(default=2.0, description="Heater PV within ± this of its mean.")
    flux_spread_cap: _Positive = Field(
        default=0.5, description="Robust flux spread (1.4826 × MAD) must stay below this."
    )
    flux_slope_cap: _Positive = Field(
        default=0.01, description="Flux drift (kW/m² per s, least squares) below this."
    )
    settle_timeout_s: _Seconds = Field(
        default=1800.0, description="Longest wait for one iteration to become steady."
    )
    max_iterations: int = Field(default=12, ge=1, description="Iterations per target.")
    max_total_s: _Seconds = Field(default=4 * 3600.0, description="Whole tune time limit.")
    runaway_flux_kw_m2: _Positive | None = Field(
        default=None, description="Abort when the flux exceeds this."
    )
    runaway_pv_margin: _Positive = Field(
        default=50.0, description="Abort when the heater PV exceeds the ceiling by this."
    )
    silent_gauge_s: _Seconds = Field(
        default=10.0, description="Abort when the flux gauge sends nothing for this long."
    )
    cool_down_setpoint: _Finite = Field(
        default=0.0, description="Written on abort, and at the end if cool_down_at_end."
    )
    cool_down_at_end: bool = True
    artifact_dir: str = Field(
        default="tunes",
        description="Where the tune artifact goes (relative to the experiment file).",
    )

    @model_validator(mode="after")
    def _ordered_limits(self) -> HeatFluxTuneConfig:
        if self.setpoint_floor >= self.setpoint_ceiling:
            raise ValueError("setpoint_floor must be below setpoint_ceiling")
        # Also checked at preflight; here too so `capa validate` reports it (exit 2).
        for name in ("initial_setpoint", "cool_down_setpoint"):
            value = getattr(self, name)
            if value > self.setpoint_ceiling:
                raise ValueError(
                    f"{name} {value:g} is above setpoint_ceiling {self.setpoint_ceiling:g}"
                )
        if self.initial_setpoint < self.setpoint_floor:
            raise ValueError(
                f"initial_setpoint {self.initial_setpoint:g} is below setpoint_floor "
                f"{self.setpoint_floor:g}"
            )
        return self
