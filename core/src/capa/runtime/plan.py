"""The run plan: a validated experiment resolved into what the runtime acts on.

Configuration models describe files; the plan holds live objects — adapter classes,
validated params, calibration objects, the procedure class — so the runtime never looks
anything up by string once a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from capa.components.adapter import Adapter
from capa.components.model import ConfigModel
from capa.components.procedure import Procedure
from capa.components.sink import Sink
from capa.config.safety import AlarmConfig, InterlockConfig
from capa.problems import Problem

__all__ = [
    "ChannelMapping",
    "ChannelPlan",
    "DerivedPlan",
    "DevicePlan",
    "RunPlan",
    "RuntimeOptions",
    "SinkPlan",
]


class ChannelMapping(Protocol):
    """Raw field value ↔ channel value, vectorised (``capa.config.hardware.ChannelConfig``)."""

    def to_value(self, raw: Any, field_unit: str = "") -> Any:
        """Channel values for raw values reported in ``field_unit``."""

    def to_raw(self, value: Any, field_unit: str = "") -> Any:
        """Raw values in ``field_unit`` for channel values (the setpoint write path)."""


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One configured device."""

    name: str
    adapter: type[Adapter]
    params: ConfigModel
    resource_id: str
    on_failure: Literal["abort", "warn", "safe_shutdown"] = "abort"
    watchdog_s: float | None = None
    """The device must produce a sample at least this often (``None``: no watchdog)."""


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """One channel: where its raw value comes from and how it is calibrated."""

    name: str
    device: str
    field: str
    unit: str
    kind: str = "value"
    mapping: ChannelMapping | None = None
    """Unit conversion and calibration; ``None`` passes raw values through unchanged."""
    keep_raw: bool = False
    writable: bool = False
    field_unit: str = ""
    """Unit the device reports, when the mapping must convert it (degF → degC)."""
    raw_unit: str = ""
    """Unit the device reports the field in (the unit of a ``keep_raw`` raw value)."""
    calibration: str = "identity"
    """One-line calibration summary for the tables' metadata (``linear slope=2 ...``)."""
    plot_group: str | None = None
    """Display group from the hardware file, or ``None``."""

    def to_value(self, raw: Any) -> Any:
        """Channel values for raw field values (vectorised)."""
        return raw if self.mapping is None else self.mapping.to_value(raw, self.field_unit)

    def to_raw(self, value: Any) -> Any:
        """Raw field values for channel values (inverse calibration, then units)."""
        return value if self.mapping is None else self.mapping.to_raw(value, self.field_unit)


@dataclass(frozen=True, slots=True)
class DerivedPlan:
    """A channel computed from other channels (``[[derived]]`` in the hardware file).

    Attributes:
        name: the channel name.
        expression: the expression text (parsed afresh per run: window state is per run).
        constants: named numbers the expression uses.
        unit: unit of the computed value.
        kind: what it measures.
        inputs: channels it reads (measured or derived).
        plot_group: display group, or ``None``.
    """

    name: str
    expression: str
    constants: Mapping[str, float]
    unit: str
    kind: str = "derived"
    inputs: tuple[str, ...] = ()
    plot_group: str | None = None

    def to_manifest(self) -> dict[str, Any]:
        """How the channel is computed, for ``manifest.recording.derived``."""
        return {
            "expression": self.expression,
            "constants": dict(self.constants),
            "unit": self.unit,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "plot_group": self.plot_group,
        }


@dataclass(frozen=True, slots=True)
class SinkPlan:
    """One extra sink of the experiment, resolved.

    Attributes:
        label: ``<id>#<index in sinks:>`` (unique; names the sink in events and counts).
        cls: the sink class.
        config: its validated ``Config``.
        on_failure: ``warn`` (event, run goes on) or ``abort`` (event, run stops).
        queue_size: records buffered for it before records are dropped for it.
    """

    label: str
    cls: type[Sink]
    config: ConfigModel
    on_failure: Literal["warn", "abort"] = "warn"
    queue_size: int = 1024


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Timing limits of one run (``runtime`` in the experiment file)."""

    shutdown_grace_s: float = 5.0
    loop_lag_warn_ms: float = 50.0
    saturation_deadline_s: float = 10.0
    command_timeout_s: float = 10.0


@dataclass(frozen=True)
class RunPlan:
    """Everything one run needs, resolved and validated.

    Attributes:
        experiment: the validated experiment model (kept for the manifest and procedures).
        hardware_name: the rig's name.
        devices: configured devices in file order.
        channels: configured channels in file order.
        procedure: the procedure class and its validated config.
        method: the validated method model, or ``None``.
        steps: step instances of the method, in order.
        runtime: timing limits.
        recording_policy: ``procedure_default`` or ``record_all``.
        config_files: name in the bundle's ``config/`` → source file.
        source: the experiment file.
        manifest_fields: operator, sample, tags, custom, procedure id and version ...
        profile_warnings: the domain profile's non-blocking findings, written as
            ``profile.preflight.warning`` events once the bundle is open (seed 003).
        sinks: extra sinks (besides the bundle), in experiment order.
        derived: derived channels, in evaluation order (inputs first).
        alarms: alarms of the rig and the experiment.
        interlocks: command interlocks of the rig and the experiment.
    """

    experiment: Any
    hardware_name: str
    devices: tuple[DevicePlan, ...]
    channels: tuple[ChannelPlan, ...]
    procedure: type[Procedure]
    procedure_config: ConfigModel
    method: Any = None
    steps: tuple[Any, ...] = ()
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    recording_policy: Literal["procedure_default", "record_all"] = "procedure_default"
    config_files: Mapping[str, Path] = field(default_factory=dict)
    source: Path | None = None
    manifest_fields: Mapping[str, Any] = field(default_factory=dict)
    profile_warnings: tuple[Problem, ...] = ()
    sinks: tuple[SinkPlan, ...] = ()
    derived: tuple[DerivedPlan, ...] = ()
    alarms: tuple[AlarmConfig, ...] = ()
    interlocks: tuple[InterlockConfig, ...] = ()

    @property
    def channel_names(self) -> list[str]:
        """Every channel of the run: measured in file order, then derived."""
        return [c.name for c in self.channels] + [d.name for d in self.derived]

    def device(self, name: str) -> DevicePlan:
        """The device called ``name``."""
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def channel(self, name: str) -> ChannelPlan | None:
        """The channel called ``name``, or ``None``."""
        return next((c for c in self.channels if c.name == name), None)
