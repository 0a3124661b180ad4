"""Parameters of a ``nidaq.task`` device: typed channels, timing, backend selection.

Validation catches what NI-DAQmx would otherwise only report when the task is created on
the rig: a physical channel used twice, two channels with one name, ranges that are not
ranges. Errors are raised from the model validators so the config layer reports them as
schema problems naming the offending field.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, field_validator

from capa import ConfigModel

__all__ = [
    "HardwareTiming",
    "NidaqParams",
    "SimOptions",
    "SimSignal",
    "ThermocoupleChannel",
    "VoltageChannel",
    "parse_sim_url",
]

# One physical channel per entry ("cDAQ1Mod1/ai0"): ranges and lists ("ai0:3", "ai0,ai1")
# would hide duplicates and break the one-channel-one-field mapping.
_PHYSICAL = re.compile(r"^[A-Za-z0-9_\-]+/[A-Za-z0-9_]+$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TEMPERATURE_UNITS = {"degC": "degC", "degF": "degF", "K": "K"}


class SimSignal(ConfigModel):
    """What the simulated backend produces for one channel (ignored by real hardware).

    ``value = offset + gain * follow + amplitude * sin(2 pi t / period_s) + noise``, where
    ``follow`` is the latest value of another run channel passed through a first-order
    lag of ``tau_s`` (a heat-flux gauge following a heater).
    """

    offset: float | None = Field(
        default=None,
        description="Base value; default: ambient for thermocouples, mid-range for volts.",
    )
    amplitude: float = Field(default=0.0, description="Amplitude of a sine added to the base.")
    period_s: float = Field(default=1.0, gt=0, description="Period of that sine.")
    noise_sigma: float | None = Field(
        default=None, ge=0, description="Gaussian noise; default 0.05 degC or 0.1 % of the range."
    )
    follow: str | None = Field(default=None, description="Run channel whose latest value is added.")
    gain: float = Field(default=1.0, description="Multiplier of the followed channel.")
    tau_s: float = Field(
        default=0.0, ge=0, description="First-order lag towards the followed value."
    )


class ThermocoupleChannel(ConfigModel):
    """A thermocouple input (``add_ai_thrmcpl_chan``)."""

    kind: Literal["thermocouple"] = "thermocouple"
    physical_channel: str = Field(description="e.g. cDAQ1Mod1/ai0 (one channel, no ranges)")
    name: str = Field(description="Field name of the channel in capa and in the task.")
    type: Literal["B", "E", "J", "K", "N", "R", "S", "T"] = Field(
        default="K", description="TC type."
    )
    cjc_source: Literal["builtin", "constant", "channel"] = "builtin"
    cjc_value: float = Field(
        default=25.0, description="CJC temperature when cjc_source = constant."
    )
    cjc_channel: str = Field(default="", description="CJC channel when cjc_source = channel.")
    min: float = Field(default=0.0, description="Expected minimum, in units.")
    max: float = Field(default=100.0, description="Expected maximum, in units.")
    units: Literal["degC", "degF", "K"] = "degC"
    sim: SimSignal | None = None

    @property
    def unit(self) -> str:
        """Unit of the field as capa records it."""
        return TEMPERATURE_UNITS[self.units]


class VoltageChannel(ConfigModel):
    """A voltage input (``add_ai_voltage_chan``)."""

    kind: Literal["voltage"] = "voltage"
    physical_channel: str = Field(description="e.g. Dev1/ai3 (one channel, no ranges)")
    name: str = Field(description="Field name of the channel in capa and in the task.")
    min: float = Field(default=-10.0, description="Expected minimum, volts.")
    max: float = Field(default=10.0, description="Expected maximum, volts.")
    terminal_config: Literal["default", "rse", "nrse", "diff", "pseudodiff"] = "default"
    sim: SimSignal | None = None

    @property
    def unit(self) -> str:
        """Unit of the field as capa records it."""
        return "V"


Channel = Annotated[ThermocoupleChannel | VoltageChannel, Field(discriminator="kind")]


class HardwareTiming(ConfigModel):
    """Hardware-clocked continuous acquisition (``cfg_samp_clk_timing``)."""

    sample_rate_hz: float = Field(gt=0, le=10_000_000, description="Sample clock, per channel.")
    block_size: int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description="Samples per channel read (and emitted) at once.",
    )
    buffer_blocks: int = Field(
        default=20,
        ge=2,
        le=10_000,
        description="Driver input buffer, in blocks (overrun headroom).",
    )
    read_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one block read.")


class SimOptions(ConfigModel):
    """Options of the simulated backend, from the query of ``device = "sim://?..."``."""

    seed: int = 0
    ambient: float = 22.0
    overrun_at_s: float | None = None
    overrun_blocks: int = 3
    lost_at_s: float | None = None
    fail_read_at_s: float | None = None


def parse_sim_url(device: str) -> SimOptions | None:
    """``SimOptions`` for a ``sim://`` device, ``None`` for a real one.

    Raises:
        ValueError: an unknown or malformed query key.
    """
    if not device.startswith("sim://"):
        return None
    query = parse_qs(urlsplit(device).query, keep_blank_values=True)
    fields = SimOptions.model_fields
    values: dict[str, str] = {}
    for key, vals in query.items():
        if key not in fields:
            raise ValueError(f"unknown sim:// option {key!r}; known: {', '.join(sorted(fields))}")
        values[key] = vals[-1]
    return SimOptions.model_validate(values)


class NidaqParams(ConfigModel):
    """Parameters of a ``nidaq.task`` device."""

    device: str = Field(
        description="NI device or chassis name (cDAQ1, Dev1), or sim:// for the simulator "
        "(sim://?seed=1&ambient=25&overrun_at_s=5&lost_at_s=9)."
    )
    chassis: str | None = Field(
        default=None,
        description="Chassis the modules sit in (cDAQ1); devices on one chassis share a "
        "worker. Default: the device name.",
    )
    task_name: str = Field(
        default="", description="Name of the DAQmx task (empty: the driver picks)."
    )
    channels: list[Channel] = Field(min_length=1, description="Analog input channels.")
    timing: HardwareTiming | None = Field(
        default=None, description="Hardware-clocked continuous mode; omitted: polled on demand."
    )
    rate_hz: float = Field(
        default=10.0, gt=0, le=1000, description="Polled mode: on-demand reads per second."
    )
    grpc_server: str | None = Field(
        default=None,
        description="host:port of an NI gRPC Device Server to run the task on instead of "
        "the local driver.",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        parse_sim_url(value)
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, channels: list[Channel]) -> list[Channel]:
        # A field validator, so the problem is located at params.channels.
        seen_phys: dict[str, str] = {}
        seen_names: set[str] = set()
        for ch in channels:
            if not _PHYSICAL.match(ch.physical_channel):
                raise ValueError(
                    f"channel {ch.name!r}: physical_channel {ch.physical_channel!r} must be "
                    "one channel like 'cDAQ1Mod1/ai0' (no ranges or lists)"
                )
            if not _NAME.match(ch.name):
                raise ValueError(f"channel name {ch.name!r} must be an identifier")
            key = ch.physical_channel.lower()
            if key in seen_phys:
                raise ValueError(
                    f"physical channel {ch.physical_channel!r} is used twice "
                    f"(channels {seen_phys[key]!r} and {ch.name!r})"
                )
            seen_phys[key] = ch.name
            if ch.name in seen_names:
                raise ValueError(f"channel name {ch.name!r} is used twice")
            seen_names.add(ch.name)
            if not ch.min < ch.max:
                raise ValueError(f"channel {ch.name!r}: min ({ch.min}) must be below max")
        return channels

    @property
    def simulated(self) -> bool:
        """Whether the simulated backend runs this task."""
        return self.device.startswith("sim://")

    @property
    def sim_options(self) -> SimOptions:
        """Simulator options (defaults for a real device)."""
        return parse_sim_url(self.device) or SimOptions()

    @property
    def chassis_name(self) -> str:
        """Chassis (or device) name the resource id is built from."""
        if self.chassis:
            return self.chassis
        if self.simulated:
            return self.channels[0].physical_channel.split("/", 1)[0]
        return self.device
