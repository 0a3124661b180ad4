"""Read and write EZ-Zone PM parameters over either protocol (values as on the wire).

Both clients raise :class:`~capa_watlow.errors.CommError` when the bus fails and
:class:`~capa_watlow.errors.DeviceRefused` when the controller answers with an error.
Temperatures are in the controller's communications unit; the adapter converts them.
"""

from __future__ import annotations

from typing import Protocol

from capa_watlow import modbus, stdbus
from capa_watlow.errors import CommError, CommTimeout, DeviceRefused
from capa_watlow.params import ParamKind, ParamSpec
from capa_watlow.transport import SharedPort

__all__ = ["ModbusRtuClient", "ParameterClient", "StdBusClient", "make_client"]


class ParameterClient(Protocol):
    """What the adapter needs from a protocol."""

    def read(self, spec: ParamSpec, instance: int) -> float:
        """Current value of ``spec`` on loop ``instance``."""
        ...

    def write(self, spec: ParamSpec, instance: int, value: float) -> float:
        """Write ``value``; return the value the controller reports back."""
        ...


class StdBusClient:
    """Standard Bus requests to the controller at ``address`` on ``port``."""

    def __init__(self, port: SharedPort, address: int, timeout_s: float) -> None:
        self.port = port
        self.address = address
        self.timeout_s = timeout_s
        self._mac = stdbus.device_mac(address)

    def _exchange(self, message: stdbus.ReadRequest | stdbus.WriteRequest, service: int) -> float:
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
        try:
            reply = stdbus.decode_payload(frame.data)
        except stdbus.FrameError as exc:
            raise CommError(f"{self.port.key}: address {self.address}: {exc}") from None
        if isinstance(reply, stdbus.ErrorReply):
            raise DeviceRefused(reply.reason)
        return float(reply.value)

    def read(self, spec: ParamSpec, instance: int) -> float:
        """Read one parameter."""
        return self._exchange(stdbus.ReadRequest(spec.param_id, instance), 0x03)

    def write(self, spec: ParamSpec, instance: int, value: float) -> float:
        """Write one parameter; returns the echoed value."""
        request = stdbus.WriteRequest(spec.param_id, instance, value, spec.kind)
        return self._exchange(request, 0x04)


class ModbusRtuClient:
    """Modbus RTU requests (via pymodbus) to unit ``address`` on ``port``."""

    def __init__(self, port: SharedPort, address: int, word_order: modbus.WordOrder) -> None:
        self.port = port
        self.address = address
        self.word_order = word_order

    def _call(self, method: str, *args: object, **kwargs: object) -> object:
        from pymodbus.exceptions import ConnectionException, ModbusException

        with self.port.lock:
            client = self.port.modbus_client()
            try:
                response = getattr(client, method)(*args, device_id=self.address, **kwargs)
            except ConnectionException as exc:
                self.port.reset()
                raise CommError(f"{self.port.key}: unit {self.address}: {exc}") from None
            except ModbusException as exc:
                raise CommTimeout(f"{self.port.key}: unit {self.address}: {exc}") from None
            except OSError as exc:
                self.port.reset()
                raise CommError(f"{self.port.key}: port lost: {exc}") from None
        if response.isError():
            code = getattr(response, "exception_code", 0)
            reason = modbus.EXCEPTION_CODES.get(code, f"exception code {code}")
            raise DeviceRefused(f"Modbus exception: {reason}")
        return response

    def read(self, spec: ParamSpec, instance: int) -> float:
        """Read the two registers of one parameter."""
        response = self._call("read_holding_registers", spec.register_for(instance), count=2)
        registers = list(response.registers)  # type: ignore[attr-defined]
        if len(registers) != 2:
            raise CommError(f"{self.port.key}: unit {self.address}: short reply {registers}")
        if spec.kind is ParamKind.FLOAT:
            return modbus.registers_to_float(registers, self.word_order)
        return float(modbus.registers_to_uint32(registers, self.word_order))

    def write(self, spec: ParamSpec, instance: int, value: float) -> float:
        """Write one parameter (function 0x10) and read it back."""
        if spec.kind is ParamKind.FLOAT:
            words = modbus.float_to_registers(value, self.word_order)
        else:
            words = modbus.uint32_to_registers(int(value), self.word_order)
        self._call("write_registers", spec.register_for(instance), words)
        return self.read(spec, instance)


def make_client(
    port: SharedPort,
    protocol: str,
    address: int,
    *,
    timeout_s: float,
    word_order: modbus.WordOrder,
) -> ParameterClient:
    """The client for ``protocol``."""
    if protocol == "stdbus":
        return StdBusClient(port, address, timeout_s)
    return ModbusRtuClient(port, address, word_order)
