"""The EZ-Zone PM parameters capa reads and writes, with their documented addresses.

Every parameter has a Watlow *parameter id* (class × 1000 + member, the number printed
in the PM user manual and used by Standard Bus) and a Modbus *relative register* for
instance 1; further instances sit at a fixed stride. Temperatures travel in the
controller's communications unit (see :mod:`capa_watlow.units`); 32-bit floats take two
registers.

Sources: the PM user manual's parameter tables (Analog Input Value 4001 / register 360,
Closed Loop Set Point 7001 / 2160, Heat Power 8011 / 1904) and Standard Bus traces
published by users of the controller. The instance strides and the Device Info
(identity) registers follow the PM register map; check them against the manual of your
firmware before relying on a second loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "IDENTITY",
    "LOOP_PARAMETERS",
    "PARAMETERS",
    "ParamKind",
    "ParamSpec",
    "by_id",
    "by_name",
]


class ParamKind(enum.StrEnum):
    """How a parameter's value is encoded on the wire."""

    FLOAT = "float"
    """IEEE-754 single precision (Standard Bus type 0x08; two Modbus registers)."""
    UINT = "uint"
    """Unsigned integer (Standard Bus type 0x0F 0x01 with 16 bits; two Modbus registers)."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One controller parameter.

    Attributes:
        name: capa's name for it (``process_value``).
        param_id: Watlow parameter id, class × 1000 + member (``4001``).
        kind: wire encoding.
        register: Modbus relative register (0-based) of instance 1.
        stride: registers between consecutive instances (0: one instance only).
        temperature: the value is a temperature in the communications unit.
        writable: the controller accepts writes.
        unit: unit of non-temperature values (``%``), empty for temperatures/integers.
        title: the parameter's name in the Watlow manual.
    """

    name: str
    param_id: int
    kind: ParamKind
    register: int
    stride: int = 0
    temperature: bool = False
    writable: bool = False
    unit: str = ""
    title: str = ""

    @property
    def param_class(self) -> int:
        """Standard Bus class byte (``param_id // 1000``)."""
        return self.param_id // 1000

    @property
    def member(self) -> int:
        """Standard Bus member byte (``param_id % 1000``)."""
        return self.param_id % 1000

    def register_for(self, instance: int) -> int:
        """Modbus relative register of ``instance`` (1-based)."""
        if instance < 1 or (self.stride == 0 and instance != 1):
            raise ValueError(f"{self.name} has no instance {instance}")
        return self.register + (instance - 1) * self.stride


LOOP_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "process_value", 4001, ParamKind.FLOAT, 360, 90, temperature=True,
        title="Analog Input Value",
    ),
    ParamSpec(
        "setpoint", 7001, ParamKind.FLOAT, 2160, 70, temperature=True, writable=True,
        title="Closed Loop Set Point",
    ),
    ParamSpec(
        "output_power", 8011, ParamKind.FLOAT, 1904, 70, unit="%", title="Heat Power",
    ),
)  # fmt: skip
"""Per-loop parameters, read every tick for each configured instance."""

IDENTITY: tuple[ParamSpec, ...] = (
    ParamSpec("hardware_id", 1001, ParamKind.UINT, 0, title="Hardware ID"),
    ParamSpec("firmware_id", 1002, ParamKind.UINT, 2, title="Firmware ID"),
    ParamSpec("software_version", 1003, ParamKind.UINT, 4, title="Software Version"),
    ParamSpec("software_build", 1005, ParamKind.UINT, 8, title="Software Build"),
)
"""Device Info parameters read by :meth:`handshake` and :meth:`discover` (read-only)."""

PARAMETERS: tuple[ParamSpec, ...] = LOOP_PARAMETERS + IDENTITY
"""Every parameter this package knows by name."""

_BY_NAME = {p.name: p for p in PARAMETERS}
_BY_ID = {p.param_id: p for p in PARAMETERS}


def by_name(name: str) -> ParamSpec:
    """The parameter called ``name``; raises ``KeyError`` naming the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown parameter {name!r}; known: {', '.join(_BY_NAME)}") from None


def by_id(param_id: int) -> ParamSpec | None:
    """The parameter with Watlow id ``param_id``, or ``None`` if this package has no entry."""
    return _BY_ID.get(param_id)
