"""Temperature units: what the controller sends on the wire versus what a channel wants.

A PM reports temperatures over the bus in its *communications* unit, which need not match
the unit on its display; the adapter therefore takes the wire unit as a parameter and
converts every temperature to the channel unit (and back for writes).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["TemperatureUnit", "convert_temperature"]

TemperatureUnit = Literal["degC", "degF", "K"]
"""Units a temperature field may be reported in."""


def _to_celsius(value: float, unit: TemperatureUnit) -> float:
    if unit == "degC":
        return value
    if unit == "degF":
        return (value - 32.0) / 1.8
    return value - 273.15


def _from_celsius(value: float, unit: TemperatureUnit) -> float:
    if unit == "degC":
        return value
    if unit == "degF":
        return value * 1.8 + 32.0
    return value + 273.15


def convert_temperature(value: float, src: TemperatureUnit, dst: TemperatureUnit) -> float:
    """Convert an absolute temperature from ``src`` to ``dst``."""
    if src == dst:
        return value
    return _from_celsius(_to_celsius(value, src), dst)
