"""The adapter contract: one device family, provided by a plugin (ARCHITECTURE.md 3.1)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from capa.components.model import ConfigModel

if TYPE_CHECKING:
    from pathlib import Path

    from capa.clock import RunClock
    from capa.components.emissions import Emission

__all__ = [
    "Acquisition",
    "Adapter",
    "AdapterContext",
    "Command",
    "CommandResult",
    "DiscoveredDevice",
    "FieldSpec",
    "HandshakeResult",
]


class Acquisition(enum.StrEnum):
    """How an adapter produces samples."""

    POLLED = "polled"
    """The runtime calls :meth:`Adapter.read` every :meth:`Adapter.poll_interval_s`."""
    STREAMED = "streamed"
    """The adapter pushes emissions itself from :meth:`Adapter.stream` until stopped."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A named value a device produces; hardware channels bind to ``(device, field)``.

    Attributes:
        name: field name, unique per device (``process_value``, ``mass``, ``tc_1``).
        unit: unit of the value as the adapter reports it (``degC``, ``g``, ``V``).
        kind: what the value is (``process_value``, ``setpoint``, ``output_power``, ...).
        writable: whether a method step may set it (a controller ``setpoint``).
        description: one line for ``capa hardware`` listings.
    """

    name: str
    unit: str
    kind: str = "value"
    writable: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    """A request to a device: a verb and its arguments.

    Attributes:
        name: the verb (``set_setpoint``, ``tare``, ``write_parameter``).
        args: verb arguments (``{"field": "setpoint", "value": 200.0}``).
        authorization_id: who or what authorised it; recorded with the command event.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    authorization_id: str | None = None

    WRITE: ClassVar[str] = "write"
    """The verb every adapter with writable fields accepts: ``write {field, value}``.
    Method steps write setpoints with it, whatever the device's own verbs are."""

    @classmethod
    def write(cls, field_name: str, value: float, authorization_id: str | None = None) -> Command:
        """``write {field, value}``: set a writable field (e.g. a controller setpoint)."""
        return cls(cls.WRITE, {"field": field_name, "value": value}, authorization_id)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command. A device refusal is ``accepted=False``, never an exception.

    Attributes:
        accepted: whether the device took the command.
        detail: human-readable detail (the refusal reason, the value read back).
        t_mono_ns: run-clock time the result was received (0 outside a run).
        value: optional value read back from the device.
    """

    accepted: bool
    detail: str = ""
    t_mono_ns: int = 0
    value: Any = None


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """A device found by :meth:`Adapter.discover`.

    Attributes:
        adapter: the adapter id that found it.
        resource_id: where it is (``serial:/dev/ttyUSB0``).
        description: what it said it is (model, serial number, firmware).
        params: a ``params`` table that would open it, for ``capa hardware new``.
    """

    adapter: str
    resource_id: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """Outcome of a read-only :meth:`Adapter.handshake` (open, identify, close)."""

    ok: bool
    detail: str = ""
    identity: Mapping[str, Any] = field(default_factory=dict)


class AdapterContext(Protocol):
    """What the runtime gives an adapter when sampling starts."""

    @property
    def device(self) -> str:
        """Configured device name."""

    @property
    def clock(self) -> RunClock:
        """The run clock; stamp every sample with ``clock.now_ns()`` or a derived time."""

    def emit(self, emission: Emission) -> None:
        """Hand one emission to the run. Thread-safe; blocks while the writer is behind."""

    def latest(self, channel: str) -> float | None:
        """Latest calibrated value of a run channel (simulators that follow another)."""

    @property
    def bundle_path(self) -> Path | None:
        """The run bundle's directory; adapters that record files (video) write under it."""


class Adapter(abc.ABC):
    """Base class of device adapters.

    Subclasses set :attr:`id`, a nested :attr:`Params` model, and implement the
    lifecycle. All lifecycle methods are coroutines; an adapter built on a blocking
    library (pyserial, nidaqmx, OpenCV) may block inside them because the runtime runs
    each resource's adapters on that resource's own worker thread, never on the main
    event loop.

    Attributes:
        id: stable dotted id (``watlow.ezzone_pm``).
        Params: pydantic model of the ``params`` table in a hardware file.
        capabilities: e.g. ``has_setpoint``, ``has_tare``, ``hardware_clocked``,
            ``records_video``.
        acquisition: polled (the runtime calls :meth:`read`) or streamed
            (:meth:`stream` pushes until :meth:`stop`).
        family: stem of ``device_records/<family>.parquet``; defaults to the first
            segment of :attr:`id`.
    """

    id: ClassVar[str]
    Params: ClassVar[type[ConfigModel]]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    acquisition: ClassVar[Acquisition] = Acquisition.POLLED
    family: ClassVar[str | None] = None

    def __init__(self, name: str, params: ConfigModel) -> None:
        self.name = name
        self.params = params

    @classmethod
    def record_family(cls) -> str:
        """File stem for this adapter's native device records."""
        return cls.family or cls.id.split(".", 1)[0]

    # ------------------------------------------------------------------ static description
    @classmethod
    @abc.abstractmethod
    def resource_id(cls, params: ConfigModel) -> str:
        """Hardware resource the device occupies, computed without any I/O.

        Devices with the same resource id (several controllers on one RS-485 port) share
        one worker.
        """

    @classmethod
    @abc.abstractmethod
    def fields(cls, params: ConfigModel) -> Sequence[FieldSpec]:
        """Fields the device produces for these params."""

    @classmethod
    def writable_fields(cls, params: ConfigModel) -> frozenset[str]:
        """Fields a method step may set."""
        return frozenset(f.name for f in cls.fields(params) if f.writable)

    @classmethod
    def written_fields(cls, params: ConfigModel, command: Command) -> Mapping[str, float]:
        """Which fields ``command`` sets, and to which raw value (no I/O).

        The run's interlocks use this to hold every command — ``write`` from a method
        step, or a device's own verb sent by a procedure or an operator — to the same
        limits. The default knows the uniform ``write {field, value}``; an adapter with
        verbs of its own that set a writable field (a controller's ``set_setpoint``)
        overrides it. Raise ``ValueError`` for a malformed command.
        """
        if command.name == Command.WRITE:
            return {str(command.args["field"]): float(command.args["value"])}
        return {}

    @classmethod
    def resource_settings(cls, params: ConfigModel) -> Mapping[str, Any]:
        """Connection settings every device on this resource must agree on.

        Validation refuses two devices on one resource whose settings differ (one serial
        port opened at two baud rates). The default takes the usual serial-line keys
        present in ``params``.
        """
        dumped = params.model_dump()
        keys = ("baudrate", "baud_rate", "baud", "bytesize", "parity", "stopbits")
        return {k: dumped[k] for k in keys if k in dumped}

    @classmethod
    def claims(cls, params: ConfigModel) -> Sequence[str]:
        """Exclusive sub-resources (a DAQ physical channel) no other device may also use."""
        return ()

    def sampling(self) -> Acquisition:
        """How this instance samples; defaults to the class's :attr:`acquisition`.

        An adapter that supports both (a DAQ polled on demand or hardware-clocked)
        implements :meth:`read` and :meth:`stream` and decides here from its params.
        """
        return self.acquisition

    def poll_interval_s(self) -> float:
        """Seconds between :meth:`read` calls for polled adapters."""
        rate = getattr(self.params, "poll_rate_hz", None) or getattr(self.params, "rate_hz", None)
        return 1.0 / float(rate) if rate else 1.0

    # ------------------------------------------------------------------ lifecycle
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect to the device. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect, leaving the instrument in its documented safe state. Idempotent."""

    async def start(self, ctx: AdapterContext) -> None:  # noqa: B027 - optional hook
        """Begin sampling; ``ctx`` stays valid until :meth:`stop` returns."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop sampling (the connection stays open)."""

    async def read(self) -> Sequence[Emission]:
        """Poll once (polled adapters): return the emissions of this tick."""
        raise NotImplementedError(f"{type(self).__name__} is not a polled adapter")

    async def stream(self, ctx: AdapterContext) -> None:
        """Push emissions through ``ctx.emit`` until :meth:`stop` (streamed adapters)."""
        raise NotImplementedError(f"{type(self).__name__} is not a streamed adapter")

    @abc.abstractmethod
    async def command(self, command: Command) -> CommandResult:
        """Execute a command. A device refusal returns ``accepted=False``; never raise for it.

        Adapters with writable fields must accept :meth:`Command.write` (``write {field,
        value}``) besides their own verbs.
        """

    async def snapshot(self) -> Mapping[str, Any]:
        """Current status fields, for previews and manual-control panels."""
        return {}

    def run_summary(self) -> Mapping[str, Any]:
        """Figures of the sampling period that just ended, for the manifest.

        Called after :meth:`stop`. Entries land in ``counts.devices.<device>``; adapters
        with the ``records_video`` capability also get a ``cameras`` entry (file, codec,
        frames, dropped, health ...). JSON-serialisable values only.
        """
        return {}

    # ------------------------------------------------------------------ optional, read-only
    @classmethod
    async def discover(cls) -> Sequence[DiscoveredDevice]:
        """Find devices of this family that are reachable now. Read-only."""
        return ()

    @classmethod
    async def handshake(cls, params: ConfigModel) -> HandshakeResult:
        """Open, identify and close the device described by ``params``. Read-only."""
        return HandshakeResult(ok=True, detail="adapter offers no handshake")
