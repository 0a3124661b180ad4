"""The EZ-Zone PM parameters capa reads and writes, with their documented addresses.

Every parameter has a Watlow *parameter id* (class x 1000 + member, the number printed
in the PM user manual and used by Standard Bus) and, if Modbus can reach it, a *relative
register* (0-based; add 400001 for the absolute "4xxxxx" number) for instance 1, with
the next instance ``stride`` registers further on.

Source of every number below: Watlow's EZ-Zone PM register list ("PM - Map 1") as
distributed in machine-readable form with watlowlib 0.8.1 (``watlowlib/data/
pm_parameters.json``, columns ``parameter_id``, ``data_type``, ``relative_addr``,
``next_inst_offset``, ``max_instance``, ``default``, ``range``); the data types are
confirmed on the wire by watlowlib's captures from a PM3 (Standard Bus tags below).

=====  ==============================  =============  ========  ======  =========
id     name (PM map)                   type           register  stride  instances
=====  ==============================  =============  ========  ======  =========
1001   Hardware ID                     signed 32-bit  0         -       1
1002   Firmware ID                     signed 32-bit  2         -       1
1003   Software Revision               signed 32-bit  4         -       1
1005   Software Build Number           signed 32-bit  8         -       1
1007   Serial Number                   signed 32-bit  12        -       1
1009   Part Number                     Short String   (none)    -       1
1011   Device Name                     Short String   (none)    -       1
1032   Serial Number (string)          Short String   (none)    -       1
4001   Analog Input Value              IEEE Float     360       80      2
7001   Closed Loop Set Point           IEEE Float     2160      80      2
8002   Control Mode Active             Enumeration    1882      70      2
8011   Heat Power                      IEEE Float     1904      70      2
17001  Standard Bus Address            unsigned 8     2480      20      1
17002  Baud Rate (Modbus)              Enumeration    2484      20      1
17003  Parity (Modbus)                 Enumeration    2486      20      1
17007  Modbus Address                  unsigned 8     2482      20      1
17009  Protocol                        Wide Enum.     2492      20      1
17043  Modbus Word Order               Wide Enum.     2488      20      1
17050  Display Units                   Enumeration    2490      20      1
=====  ==============================  =============  ========  ======  =========

So loop 2 is PV 440, set point 2240, heat power 1974. The PM map defines two instances
of the loop parameters; a PM has at most two loops, so loops 3 and 4 have no registers
and are refused (never extrapolated). Enumerations take one register on Modbus (as the
PM3 answers watlowlib); the communication parameters' second instance is not modelled.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "COMMS",
    "DEVICE_INFO",
    "ENUM_HIGH_LOW",
    "ENUM_LOW_HIGH",
    "IDENTITY",
    "LOOP_PARAMETERS",
    "MAX_LOOPS",
    "PARAMETERS",
    "WORD_ORDER",
    "ParamKind",
    "ParamSpec",
    "by_id",
    "by_name",
]

MAX_LOOPS = 2
"""Instances of the loop parameters in the PM register map."""

ENUM_HIGH_LOW = 1330
"""Value of Modbus Word Order (17043) meaning high word first (PM map)."""
ENUM_LOW_HIGH = 1331
"""Value of Modbus Word Order (17043) meaning low word first: the factory default."""


class ParamKind(enum.StrEnum):
    """How a parameter's value is encoded (Standard Bus type tag; Modbus width)."""

    U8 = "u8"
    """Unsigned 8-bit (Standard Bus tag 0x01; one Modbus register, low byte)."""
    U16 = "u16"
    """Unsigned 16-bit (tag 0x03; one register)."""
    U32 = "u32"
    """Unsigned 32-bit (tag 0x05; two registers)."""
    S32 = "s32"
    """Signed 32-bit (tag 0x06; two registers)."""
    FLOAT = "float"
    """IEEE-754 single precision (tag 0x08; two registers)."""
    STRING = "string"
    """ASCII string (tag 0x09 + length byte; not on the PM's Modbus map)."""
    ENUM = "enum"
    """Enumeration / wide enumeration: tag 0x0F, word count 1, 16-bit value; one register."""

    @property
    def registers(self) -> int:
        """Modbus registers one value takes (0: not reachable over Modbus)."""
        return _REGISTERS[self]

    @property
    def numeric(self) -> bool:
        """Whether values are numbers (everything but strings)."""
        return self is not ParamKind.STRING


_REGISTERS = {
    ParamKind.U8: 1, ParamKind.U16: 1, ParamKind.ENUM: 1, ParamKind.U32: 2,
    ParamKind.S32: 2, ParamKind.FLOAT: 2, ParamKind.STRING: 0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One controller parameter.

    Attributes:
        name: capa's name for it (``process_value``).
        param_id: Watlow parameter id, class x 1000 + member (``4001``).
        kind: wire encoding.
        register: Modbus relative register (0-based) of instance 1; ``None`` if the
            parameter is not on the Modbus map.
        stride: registers between consecutive instances (0: one instance only).
        instances: instances the PM map defines.
        temperature: the value is a temperature in the communications unit.
        writable: the controller accepts writes.
        unit: unit of non-temperature values (``%``), empty for temperatures/integers.
        title: the parameter's name in the Watlow register list.
    """

    name: str
    param_id: int
    kind: ParamKind
    register: int | None
    stride: int = 0
    instances: int = 1
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
        """Modbus relative register of ``instance`` (1-based).

        Raises:
            ValueError: the parameter has no Modbus register or no such instance.
        """
        if self.register is None:
            raise ValueError(f"{self.name} ({self.param_id}) is not on the PM's Modbus map")
        if not 1 <= instance <= self.instances:
            raise ValueError(f"{self.name} has no instance {instance} (1-{self.instances})")
        return self.register + (instance - 1) * self.stride


LOOP_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "process_value", 4001, ParamKind.FLOAT, 360, 80, MAX_LOOPS, temperature=True,
        title="Analog Input Value",
    ),
    ParamSpec(
        "setpoint", 7001, ParamKind.FLOAT, 2160, 80, MAX_LOOPS, temperature=True,
        writable=True, title="Closed Loop Set Point",
    ),
    ParamSpec(
        "output_power", 8011, ParamKind.FLOAT, 1904, 70, MAX_LOOPS, unit="%",
        title="Heat Power",
    ),
)  # fmt: skip
"""Per-loop parameters, read every tick for each configured instance."""

IDENTITY: tuple[ParamSpec, ...] = (
    ParamSpec("hardware_id", 1001, ParamKind.S32, 0, title="Hardware ID"),
    ParamSpec("firmware_id", 1002, ParamKind.S32, 2, title="Firmware ID"),
    ParamSpec("software_version", 1003, ParamKind.S32, 4, title="Software Revision"),
    ParamSpec("software_build", 1005, ParamKind.S32, 8, title="Software Build Number"),
)
"""Device Info parameters read by :meth:`handshake` and :meth:`discover` (read-only)."""

DEVICE_INFO: tuple[ParamSpec, ...] = (
    ParamSpec("serial_number", 1007, ParamKind.S32, 12, title="Serial Number"),
    ParamSpec("part_number", 1009, ParamKind.STRING, None, title="Part Number"),
    ParamSpec("device_name", 1011, ParamKind.STRING, None, writable=True, title="Device Name"),
    ParamSpec("serial_number_text", 1032, ParamKind.STRING, None, title="Serial Number"),
    ParamSpec("control_mode", 8002, ParamKind.ENUM, 1882, 70, MAX_LOOPS,
              title="Control Mode Active"),
)  # fmt: skip
"""Further identity and status parameters a real PM answers (the simulator does too)."""

WORD_ORDER = ParamSpec("modbus_word_order", 17043, ParamKind.ENUM, 2488, title="Modbus Word Order")
"""The controller's own Modbus word-order setting (1330 High_Low, 1331 Low_High)."""

COMMS: tuple[ParamSpec, ...] = (
    ParamSpec("stdbus_address", 17001, ParamKind.U8, 2480, title="Standard Bus Address"),
    ParamSpec("modbus_baud_rate", 17002, ParamKind.ENUM, 2484, title="Baud Rate (Modbus)"),
    ParamSpec("modbus_parity", 17003, ParamKind.ENUM, 2486, title="Parity (Modbus)"),
    ParamSpec("modbus_address", 17007, ParamKind.U8, 2482, title="Modbus Address"),
    ParamSpec("protocol", 17009, ParamKind.ENUM, 2492, title="Protocol"),
    WORD_ORDER,
    ParamSpec("display_units", 17050, ParamKind.ENUM, 2490, title="Display Units"),
)
"""Communications settings (read-only here: capa never reconfigures a controller's link)."""

PARAMETERS: tuple[ParamSpec, ...] = LOOP_PARAMETERS + IDENTITY + DEVICE_INFO + COMMS
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
