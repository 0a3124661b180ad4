"""Read and write EZ-Zone PM parameters over either protocol (values as on the wire).

Both clients raise a :class:`~capa_watlow.errors.CommError` subclass when the bus fails
and a :class:`~capa_watlow.errors.DeviceRefused` subclass when the controller answers
with an error (:class:`~capa_watlow.errors.ParameterUnsupported` for a parameter the
controller does not have). Temperatures are in the controller's communications unit;
the adapter converts them.
"""

from __future__ import annotations

from typing import Protocol

from capa_watlow import modbus, stdbus
from capa_watlow.errors import (
    CommGarbled,
    DeviceRefused,
    IllegalFunction,
    ModbusExceptionReply,
    NoSuchAttribute,
    NoSuchInstance,
    NoSuchObject,
    ParameterUnsupported,
)
from capa_watlow.params import ParamKind, ParamSpec
from capa_watlow.stdbus import Value
from capa_watlow.transport import SharedPort

__all__ = ["ModbusRtuClient", "ParameterClient", "StdBusClient", "make_client", "refusal"]


class ParameterClient(Protocol):
    """What the adapter needs from a protocol."""

    def read(self, spec: ParamSpec, instance: int) -> Value:
        """Current value of ``spec`` on loop ``instance``."""
        ...

    def write(self, spec: ParamSpec, instance: int, value: Value) -> Value:
        """Write ``value``; return the value the controller reports back."""
        ...


_STDBUS_REFUSALS: dict[int, type[DeviceRefused]] = {
    stdbus.ERR_NO_SUCH_OBJECT: NoSuchObject,
    stdbus.ERR_NO_SUCH_ATTRIBUTE: NoSuchAttribute,
    stdbus.ERR_NO_SUCH_INSTANCE: NoSuchInstance,
}


def refusal(code: int, where: str) -> DeviceRefused:
    """The exception for Standard Bus error reply ``code`` (``where`` names the request)."""
    cls = _STDBUS_REFUSALS.get(code, DeviceRefused)
    reason = stdbus.ERROR_CODES.get(code, "meaning not established")
    return cls(f"{where}: error reply 0x{code:02X} ({reason})", code)


def modbus_refusal(code: int, where: str) -> DeviceRefused:
    """The exception for Modbus exception ``code``."""
    reason = modbus.EXCEPTION_CODES.get(code, "unknown exception code")
    message = f"{where}: Modbus exception 0x{code:02X} ({reason})"
    if code == modbus.ILLEGAL_FUNCTION:
        return IllegalFunction(message, code)
    if code == modbus.ILLEGAL_DATA_ADDRESS:
        # The register does not exist on this controller: the parameter is unsupported.
        return ParameterUnsupported(message, code)
    return ModbusExceptionReply(message, code)


class StdBusClient:
    """Standard Bus requests to the controller at ``address`` on ``port``."""

    def __init__(self, port: SharedPort, address: int, timeout_s: float) -> None:
        self.port = port
        self.address = address
        self.timeout_s = timeout_s
        self._mac = stdbus.device_mac(address)

    def _exchange(self, message: stdbus.ReadRequest | stdbus.WriteRequest, service: int) -> Value:
        def accept(frame: stdbus.Frame) -> bool:
            # A reply from our controller to this very request (not a late earlier one).
            if frame.frame_type != stdbus.REPLY or frame.source != self._mac:
                return False
            try:
                reply = stdbus.decode_payload(frame.data)
            except stdbus.FrameError:
                return True  # ours but undecodable: reported below
            return isinstance(reply, stdbus.ErrorReply) or (
                reply.service == service
                and reply.param_id == message.param_id
                and reply.instance == message.instance
            )

        frame = self.port.stdbus_exchange(
            stdbus.build_request(self.address, message), self.timeout_s, accept
        )
        where = f"address {self.address} parameter {message.param_id} instance {message.instance}"
        try:
            reply = stdbus.decode_payload(frame.data)
        except stdbus.FrameError as exc:
            raise CommGarbled(f"{self.port.key}: {where}: {exc}") from None
        if isinstance(reply, stdbus.ErrorReply):
            raise refusal(reply.code, where)
        return reply.value

    def read(self, spec: ParamSpec, instance: int) -> Value:
        """Read one parameter (any value type the controller sends)."""
        return self._exchange(stdbus.ReadRequest(spec.param_id, instance), 0x03)

    def write(self, spec: ParamSpec, instance: int, value: Value) -> Value:
        """Write one parameter in its type; returns the echoed value."""
        request = stdbus.WriteRequest(spec.param_id, instance, value, spec.kind)
        return self._exchange(request, 0x04)


class ModbusRtuClient:
    """Modbus RTU requests to unit ``address`` on ``port`` (this package's own codec)."""

    def __init__(
        self, port: SharedPort, address: int, word_order: modbus.WordOrder, timeout_s: float
    ) -> None:
        self.port = port
        self.address = address
        self.word_order = word_order
        self.timeout_s = timeout_s

    def _call(self, request: modbus.ReadHolding | modbus.WriteMultiple) -> modbus.Response:
        response = self.port.modbus_exchange(modbus.encode_request(request), self.timeout_s)
        if isinstance(response, modbus.ExceptionReply):
            raise modbus_refusal(response.code, f"unit {self.address} register {request.address}")
        return response

    def read_registers(self, register: int, count: int) -> tuple[int, ...]:
        """Read ``count`` holding registers from ``register`` (function 0x03)."""
        response = self._call(modbus.ReadHolding(self.address, register, count))
        if not isinstance(response, modbus.ReadHoldingReply) or len(response.values) != count:
            raise CommGarbled(
                f"{self.port.key}: unit {self.address}: reply {response} to a read of "
                f"{count} registers at {register}"
            )
        return response.values

    def read(self, spec: ParamSpec, instance: int) -> Value:
        """Read the register(s) of one parameter and decode them in the word order."""
        if not spec.kind.numeric:
            raise ParameterUnsupported(f"{spec.name} ({spec.param_id}) is not on Modbus")
        words = self.read_registers(spec.register_for(instance), spec.kind.registers)
        return decode_words(words, spec.kind, self.word_order)

    def write(self, spec: ParamSpec, instance: int, value: Value) -> Value:
        """Write one parameter (function 0x10) and read it back."""
        if isinstance(value, str) or not spec.kind.numeric:
            raise ParameterUnsupported(f"{spec.name} ({spec.param_id}) is not on Modbus")
        register = spec.register_for(instance)
        words = encode_words(value, spec.kind, self.word_order)
        response = self._call(modbus.WriteMultiple(self.address, register, tuple(words)))
        if not isinstance(response, modbus.WriteMultipleReply) or (
            response.address,
            response.count,
        ) != (register, len(words)):
            raise CommGarbled(
                f"{self.port.key}: unit {self.address}: reply {response} to a write of "
                f"{len(words)} registers at {register}"
            )
        return self.read(spec, instance)


def decode_words(
    words: tuple[int, ...] | list[int], kind: ParamKind, order: modbus.WordOrder
) -> Value:
    """The value of ``kind`` held by ``words`` (one or two registers)."""
    if kind is ParamKind.FLOAT:
        return modbus.registers_to_float(words, order)
    if kind is ParamKind.S32:
        return modbus.registers_to_int32(words, order)
    if kind is ParamKind.U32:
        return modbus.registers_to_uint32(words, order)
    if kind is ParamKind.U8:
        return int(words[0]) & 0xFF  # the low byte carries the value
    return int(words[0])


def encode_words(value: float | int, kind: ParamKind, order: modbus.WordOrder) -> list[int]:
    """Registers holding ``value`` as ``kind``."""
    if kind is ParamKind.FLOAT:
        return modbus.float_to_registers(float(value), order)
    number = int(value)
    if number != value:
        raise ValueError(f"{kind} parameter needs a whole number, got {value!r}")
    limits = {ParamKind.S32: (-(2**31), 2**31 - 1), ParamKind.U32: (0, 2**32 - 1),
              ParamKind.U8: (0, 0xFF)}  # fmt: skip
    low, high = limits.get(kind, (0, 0xFFFF))
    if not low <= number <= high:
        raise ValueError(f"{number} does not fit a {kind} parameter")
    if kind is ParamKind.S32:
        return modbus.int32_to_registers(number, order)
    if kind is ParamKind.U32:
        return modbus.uint32_to_registers(number, order)
    return [number]


def make_client(
    port: SharedPort,
    protocol: str,
    address: int,
    *,
    timeout_s: float,
    word_order: modbus.WordOrder,
) -> StdBusClient | ModbusRtuClient:
    """The client for ``protocol``."""
    if protocol == "stdbus":
        return StdBusClient(port, address, timeout_s)
    return ModbusRtuClient(port, address, word_order, timeout_s)
