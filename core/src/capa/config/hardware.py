"""The hardware file (``rig.toml``): devices, and the channels bound to their fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from capa.components.model import ConfigModel
from capa.config.calibration import Calibration, IdentityCalibration
from capa.config.safety import AlarmConfig, InterlockConfig

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ChannelConfig",
    "ChannelSource",
    "DerivedChannelConfig",
    "DeviceConfig",
    "HardwareConfig",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
"""Device and channel names: identifiers (they appear in column names and step targets)."""


class DeviceConfig(ConfigModel):
    """One instrument: which adapter drives it and with what parameters."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique device name.")
    adapter: str = Field(description="Adapter id from a plugin (`capa plugins list`).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The adapter's own parameters, validated by the adapter's Params model.",
    )
    resource_id: str | None = Field(
        default=None,
        description="Override of the hardware resource the adapter computes "
        "(devices on one resource share a worker).",
    )
    on_failure: Literal["abort", "warn", "safe_shutdown"] = Field(
        default="abort",
        description="If the device fails during a run (or its watchdog trips): abort the "
        "run, warn and go on, or bring the rig to its safe state and end the run.",
    )
    watchdog_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="The device must produce a sample at least this often during a run; "
        "otherwise its on_failure policy applies (event watchdog.tripped).",
    )


class ChannelSource(ConfigModel):
    """The device field a channel reads."""

    device: str = Field(description="Name of a device in this file.")
    field: str = Field(description="A field the device's adapter produces.")


class ChannelConfig(ConfigModel):
    """A named, calibrated value recorded during a run and usable as a step target."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique channel name.")
    kind: str = Field(description="What the channel measures (temperature, mass, ...).")
    unit: str = Field(description="Unit of the channel value (degC, g, V, ...).")
    source: ChannelSource = Field(description="Device and field the channel reads.")
    calibration: Calibration = Field(
        default_factory=IdentityCalibration,
        description="Raw -> value mapping: identity | linear | polynomial | lookup | "
        "piecewise_linear.",
    )
    derived_unit: str | None = Field(
        default=None, description="Unit of the calibrated value when it differs from `unit`."
    )
    keep_raw: bool = Field(default=False, description="Also record the uncalibrated value.")
    sample_rate_hz: float | None = Field(
        default=None,
        gt=0,
        le=100e6,
        description="Recording rate; default: the device's rate (at most 100 MHz).",
    )
    plot_group: str | None = Field(default=None, description="Plots group channels by this.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form facts copied to the run bundle."
    )

    @property
    def value_unit(self) -> str:
        """Unit of the calibrated value: ``derived_unit`` if set, else ``unit``."""
        return self.derived_unit or self.unit

    def to_value(
        self, raw: npt.ArrayLike, field_unit: str = ""
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Channel values for raw field values (vectorised).

        A temperature field reported in another scale than ``unit`` (degC / degF / K) is
        converted first; the calibration then maps ``unit`` to :attr:`value_unit`.
        """
        from capa.config.units import convert

        staged = convert(raw, field_unit, self.unit) if field_unit else raw
        return self.calibration.apply(staged)

    def to_raw(
        self, value: npt.ArrayLike, field_unit: str = ""
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Raw field values that produce ``value`` — the setpoint write path.

        Raises :class:`~capa.config.calibration.CalibrationError` when the calibration
        has no exact inverse for ``value``.
        """
        from capa.config.units import convert

        staged = self.calibration.inverse(value)
        return convert(staged, self.unit, field_unit) if field_unit else staged


class DerivedChannelConfig(ConfigModel):
    """A channel computed from other channels by a safe arithmetic expression.

    Evaluated in the pipeline whenever one of its inputs gets new samples (the other
    inputs at their latest values), recorded like a measured channel and usable in waits,
    alarms and plots; never writable. See :mod:`capa.config.expressions` for the grammar.
    """

    name: str = Field(pattern=NAME_PATTERN, description="Unique channel name.")
    expression: str = Field(
        min_length=1,
        max_length=1000,
        description="Arithmetic over channel names and constants, e.g. "
        "`gain * hf_raw + offset`, `furnace_t - ambient_t`, `movavg(mass, 10)`.",
    )
    unit: str = Field(description="Unit of the computed value.")
    kind: str = Field(default="derived", description="What the channel measures.")
    constants: dict[str, float] = Field(
        default_factory=dict, description="Named numbers the expression may use."
    )
    plot_group: str | None = Field(default=None, description="Plots group channels by this.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form facts copied to the run bundle."
    )


class HardwareConfig(ConfigModel):
    """A rig: its devices and channels (``*.toml``)."""

    name: str = Field(min_length=1, description="Rig name, recorded in every run.")
    devices: list[DeviceConfig] = Field(default_factory=list, description="Instruments.")
    channels: list[ChannelConfig] = Field(default_factory=list, description="Channels.")
    derived: list[DerivedChannelConfig] = Field(
        default_factory=list, description="Channels computed from other channels."
    )
    alarms: list[AlarmConfig] = Field(
        default_factory=list, description="Alarms on channels (limits, rates, staleness)."
    )
    interlocks: list[InterlockConfig] = Field(
        default_factory=list, description="Limits no command may exceed on a channel."
    )
