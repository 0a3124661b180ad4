"""A simulated RS-485 bus: several controllers answering both protocols over a byte stream.

:class:`SimBus` is transport-free: feed it the bytes the host wrote and it returns what
the bus answers (with delays and disconnects for injected faults). Requests are cut out
of the stream by each protocol's length rule. In ``auto`` mode a frame starting with the
Standard Bus preamble ``55 FF`` is Standard Bus (no Modbus frame can start that way:
0xFF is no function code); anything else is Modbus RTU.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from capa_watlow import modbus, stdbus
from capa_watlow.params import PARAMETERS, ParamKind, ParamSpec
from capa_watlow.sim.faults import FaultKind, FaultPlan
from capa_watlow.sim.model import ControllerModel, Refusal, RefusalReason
from capa_watlow.units import TemperatureUnit, convert_temperature

__all__ = ["Disconnect", "Reply", "SimBus", "SimProtocol"]

SimProtocol = Literal["auto", "stdbus", "modbus_rtu"]

_STDBUS_CODES = {
    RefusalReason.READ_ONLY: 0x80,
    RefusalReason.NO_PARAMETER: 0x81,
    RefusalReason.NO_INSTANCE: 0x82,
    RefusalReason.OUT_OF_RANGE: 0x83,
}
_MODBUS_CODES = {
    RefusalReason.READ_ONLY: 0x02,
    RefusalReason.NO_PARAMETER: 0x02,
    RefusalReason.NO_INSTANCE: 0x02,
    RefusalReason.OUT_OF_RANGE: 0x03,
}
_DEVICE_FAILURE_STDBUS = 0x86
_DEVICE_FAILURE_MODBUS = 0x04


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes the bus sends back after ``delay_s``."""

    data: bytes
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The bus drops the connection."""


Outgoing = Reply | Disconnect


def _register_map(instances: int) -> dict[int, tuple[ParamSpec, int, int]]:
    # register -> (parameter, instance, word index within the 32-bit value)
    table: dict[int, tuple[ParamSpec, int, int]] = {}
    for spec in PARAMETERS:
        for instance in range(1, (instances if spec.stride else 1) + 1):
            base = spec.register_for(instance)
            table[base] = (spec, instance, 0)
            table[base + 1] = (spec, instance, 1)
    return table


class SimBus:
    """Controllers on one bus, answering whatever protocol the host speaks.

    Args:
        controllers: the controllers, by address.
        protocol: ``auto`` (both), ``stdbus`` or ``modbus_rtu`` (the other is ignored).
        wire_unit: temperature unit on the wire (a PM's communications unit).
        word_order: Modbus order of the two words of 32-bit values.
        faults: fault queue (a new empty one by default).
    """

    def __init__(
        self,
        controllers: Iterable[ControllerModel],
        *,
        protocol: SimProtocol = "auto",
        wire_unit: TemperatureUnit = "degF",
        word_order: modbus.WordOrder = "low_high",
        faults: FaultPlan | None = None,
    ) -> None:
        self.controllers = {c.address: c for c in controllers}
        self.protocol = protocol
        self.wire_unit = wire_unit
        self.word_order = word_order
        self.faults = faults or FaultPlan()
        self._buf = bytearray()
        self._maps = {a: _register_map(c.instances) for a, c in self.controllers.items()}
        self.requests_seen = 0

    def reset(self) -> None:
        """Forget partial input (the line was dropped)."""
        self._buf.clear()

    # ---------------------------------------------------------------- stream handling
    def feed(self, chunk: bytes) -> list[Outgoing]:
        """Take bytes from the host; return the bus's answers in order."""
        self._buf += chunk
        out: list[Outgoing] = []
        while self._buf:
            frame = self._cut()
            if frame is None:
                break
            kind, raw = frame
            answer = self._answer_stdbus(raw) if kind == "stdbus" else self._answer_modbus(raw)
            if answer is not None:
                out.append(answer)
        return out

    def _cut(self) -> tuple[str, bytes] | None:  # noqa: PLR0911 - one exit per framing case
        buf = self._buf
        if buf[:1] == b"\x55" and (len(buf) < 2 or buf[1] == 0xFF):
            if len(buf) < 8:
                return None
            (length,) = struct.unpack_from(">H", buf, 5)
            if length > stdbus.MAX_DATA:
                del buf[:1]
                return self._cut() if buf else None
            total = 8 + (length + 2 if length else 0)
            kind = "stdbus"
        else:
            if len(buf) < 2:
                return None
            function = buf[1]
            if function == modbus.READ_HOLDING:
                total = 8
            elif function == modbus.WRITE_MULTIPLE:
                if len(buf) < 7:
                    return None
                total = 9 + buf[6]
            else:
                del buf[:1]  # not the start of any frame we know: resynchronise
                return self._cut() if buf else None
            kind = "modbus"
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        return kind, raw

    def _apply_fault(self, address: int, reply: bytes, error: bytes) -> Outgoing | None:
        fault = self.faults.take(address)
        if fault is None:
            return Reply(reply)
        if fault.kind is FaultKind.NO_REPLY:
            return None
        if fault.kind is FaultKind.BAD_CRC:
            return Reply(reply[:-1] + bytes((reply[-1] ^ 0x5A,)))
        if fault.kind is FaultKind.ERROR_REPLY:
            return Reply(error)
        if fault.kind is FaultKind.SLOW_REPLY:
            return Reply(reply, fault.delay_s)
        return Disconnect()

    # ---------------------------------------------------------------- temperatures
    def _to_wire(self, spec: ParamSpec, value: float) -> float:
        return convert_temperature(value, "degC", self.wire_unit) if spec.temperature else value

    def _from_wire(self, spec: ParamSpec, value: float) -> float:
        return convert_temperature(value, self.wire_unit, "degC") if spec.temperature else value

    # ---------------------------------------------------------------- Standard Bus
    def _answer_stdbus(self, raw: bytes) -> Outgoing | None:
        if self.protocol == "modbus_rtu":
            return None
        items = stdbus.FrameAssembler().feed(raw)
        if not items or isinstance(items[0], stdbus.FrameError):
            return None  # a real controller ignores a frame whose check fails
        frame = items[0]
        address = stdbus.mac_to_address(frame.destination)
        controller = self.controllers.get(address) if address is not None else None
        if frame.frame_type != stdbus.REQUEST or controller is None or address is None:
            return None
        self.requests_seen += 1
        try:
            request = stdbus.decode_request(frame.data)
        except stdbus.FrameError:
            return None
        answer: stdbus.Reply | stdbus.ErrorReply
        try:
            if isinstance(request, stdbus.ReadRequest):
                value, spec = controller.read(request.param_id, request.instance)
                service = 0x03
            else:
                spec_value = request.value
                _, spec = controller.read(request.param_id, request.instance)
                value, spec = controller.write(
                    request.param_id, request.instance, self._from_wire(spec, spec_value)
                )
                service = 0x04
            answer = stdbus.Reply(
                service, request.param_id, request.instance, self._to_wire(spec, value), spec.kind
            )
        except Refusal as refusal:
            answer = stdbus.ErrorReply(_STDBUS_CODES[refusal.reason])
        error = stdbus.build_reply(address, stdbus.ErrorReply(_DEVICE_FAILURE_STDBUS), frame.source)
        return self._apply_fault(address, stdbus.build_reply(address, answer, frame.source), error)

    # ---------------------------------------------------------------- Modbus RTU
    def _answer_modbus(self, raw: bytes) -> Outgoing | None:
        if self.protocol == "stdbus":
            return None
        try:
            request = modbus.decode_request(raw)
        except modbus.ModbusFrameError:
            return None  # bad CRC: a slave stays silent
        controller = self.controllers.get(request.unit)
        if controller is None:
            return None
        self.requests_seen += 1
        function = modbus.READ_HOLDING if isinstance(request, modbus.ReadHolding) else 0x10
        try:
            if isinstance(request, modbus.ReadHolding):
                response: modbus.Response = modbus.ReadHoldingReply(
                    request.unit, self._read_registers(controller, request.address, request.count)
                )
            else:
                self._write_registers(controller, request.address, request.values)
                response = modbus.WriteMultipleReply(
                    request.unit, request.address, len(request.values)
                )
        except Refusal as refusal:
            response = modbus.ExceptionReply(request.unit, function, _MODBUS_CODES[refusal.reason])
        error = modbus.encode_response(
            modbus.ExceptionReply(request.unit, function, _DEVICE_FAILURE_MODBUS)
        )
        return self._apply_fault(request.unit, modbus.encode_response(response), error)

    def _words(self, spec: ParamSpec, value: float) -> list[int]:
        if spec.kind is ParamKind.FLOAT:
            return modbus.float_to_registers(value, self.word_order)
        return modbus.uint32_to_registers(int(value), self.word_order)

    def _read_registers(
        self, controller: ControllerModel, start: int, count: int
    ) -> tuple[int, ...]:
        table = self._maps[controller.address]
        words: list[int] = []
        cache: dict[tuple[int, int], list[int]] = {}
        for register in range(start, start + count):
            entry = table.get(register)
            if entry is None:
                raise Refusal(RefusalReason.NO_PARAMETER)
            spec, instance, index = entry
            key = (spec.param_id, instance)
            if key not in cache:
                value, _ = controller.read(spec.param_id, instance)
                cache[key] = self._words(spec, self._to_wire(spec, value))
            words.append(cache[key][index])
        return tuple(words)

    def _write_registers(
        self, controller: ControllerModel, start: int, values: tuple[int, ...]
    ) -> None:
        entry = self._maps[controller.address].get(start)
        if entry is None or entry[2] != 0 or len(values) != 2:
            raise Refusal(RefusalReason.NO_PARAMETER)  # writes must cover one whole value
        spec, instance, _ = entry
        if spec.kind is ParamKind.FLOAT:
            value = modbus.registers_to_float(values, self.word_order)
        else:
            value = float(modbus.registers_to_uint32(values, self.word_order))
        controller.write(spec.param_id, instance, self._from_wire(spec, value))
