"""``capa.builtin.heat_flux_tune``: find the heater setpoint giving each target heat flux."""

from __future__ import annotations

from capa_procedures.heat_flux.config import HeatFluxTuneConfig
from capa_procedures.heat_flux.procedure import HeatFluxTune

__all__ = ["HeatFluxTune", "HeatFluxTuneConfig"]
