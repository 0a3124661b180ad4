"""Errors of the Watlow driver, in capa's one exception hierarchy.

Two families, kept apart on purpose:

- :class:`CommError` -- the bus did not deliver a usable reply. Each subclass is one
  fault with its own event kind (``comm_error.<what>``): no reply, a reply failing its
  checksum, garbled bytes, the port lost, the port not openable. The adapter drops the
  connection and reconnects with back-off.
- :class:`DeviceRefused` -- the controller answered, with an error. The link is fine.
  Standard Bus error replies and Modbus exception responses map to subclasses, so "this
  controller does not have that parameter" (:class:`ParameterUnsupported`) is told apart
  from a refused value and from a communication failure.
"""

from __future__ import annotations

from typing import ClassVar

import capa

__all__ = [
    "CommChecksum",
    "CommError",
    "CommGarbled",
    "CommTimeout",
    "DeviceRefused",
    "IllegalFunction",
    "ModbusExceptionReply",
    "NoSuchAttribute",
    "NoSuchInstance",
    "NoSuchObject",
    "ParameterUnsupported",
    "PortConflict",
    "PortLost",
    "PortUnavailable",
    "WordOrderMismatch",
]


class CommError(capa.CapaError):
    """The bus did not deliver a usable reply (timeout, garbled frame, port lost)."""

    kind: ClassVar[str] = "comm_error"
    """Event kind the adapter records for this failure."""


class CommTimeout(CommError):
    """No (complete) reply within the timeout: the controller stayed silent."""

    kind: ClassVar[str] = "comm_error.no_reply"


class CommGarbled(CommError):
    """Bytes arrived but they are not a reply (noise, a truncated or foreign frame)."""

    kind: ClassVar[str] = "comm_error.garbled"


class CommChecksum(CommGarbled):
    """A complete reply arrived whose checksum (CRC) is wrong."""

    kind: ClassVar[str] = "comm_error.bad_checksum"


class PortLost(CommError):
    """The serial port failed under an open connection (unplugged, device gone)."""

    kind: ClassVar[str] = "comm_error.port_lost"


class PortUnavailable(CommError):
    """The serial port cannot be opened (absent, busy, no permission)."""

    kind: ClassVar[str] = "comm_error.port_unavailable"


class DeviceRefused(capa.CapaError):
    """The controller understood the request and answered with an error (a refusal)."""

    kind: ClassVar[str] = "read_refused"

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        """The protocol's error code (Standard Bus error byte or Modbus exception code)."""


class ParameterUnsupported(DeviceRefused):
    """The controller has no such parameter (a model or firmware without it)."""

    kind: ClassVar[str] = "parameter_unsupported"


class NoSuchObject(ParameterUnsupported):
    """Standard Bus 0x81: the parameter's class (object) does not exist on this controller."""


class NoSuchAttribute(ParameterUnsupported):
    """Standard Bus 0x83: the class exists but the member (attribute) does not."""


class NoSuchInstance(DeviceRefused):
    """Standard Bus 0x84: the parameter exists, this instance (loop, channel) does not."""

    kind: ClassVar[str] = "instance_unsupported"


class ModbusExceptionReply(DeviceRefused):
    """A Modbus exception response (function code with the high bit set and a code)."""


class IllegalFunction(ModbusExceptionReply):
    """Modbus exception 0x01: the controller does not implement that function code."""


class PortConflict(capa.ConfigError):
    """Two devices on one port disagree on how to talk on it (protocol, baud rate)."""


class WordOrderMismatch(capa.DeviceError):
    """The controller's Modbus word order is not the one the device's params name.

    Raised by ``open()``: reading on would silently turn every float into nonsense
    (a PV of 2.4e-41, a set point stored as about 0), so the device is refused.
    """
