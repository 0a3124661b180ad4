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
from capa_watlow.client import decode_words, encode_words
from capa_watlow.params import LOOP_PARAMETERS, PARAMETERS, ParamSpec
from capa_watlow.sim.faults import FaultKind, FaultPlan
from capa_watlow.sim.model import (
    UNITS_ENUM,
    WORD_ORDER_ENUM,
    ControllerModel,
    Refusal,
    RefusalReason,
)
from capa_watlow.stdbus import Value
from capa_watlow.units import TemperatureUnit, convert_temperature

__all__ = ["Disconnect", "Reply", "SimBus", "SimProtocol"]

SimProtocol = Literal["auto", "stdbus", "modbus_rtu"]

# 0x81 / 0x83 / 0x84 are what a PM3 sends (watlowlib's captures). No capture shows the
# answer to a write of a read-only parameter or of an out-of-range value: the simulator
# sends 0x80 for both, an assumption the package README lists as unverified.
_STDBUS_CODES = {
    RefusalReason.NO_OBJECT: stdbus.ERR_NO_SUCH_OBJECT,
    RefusalReason.NO_ATTRIBUTE: stdbus.ERR_NO_SUCH_ATTRIBUTE,
    RefusalReason.NO_INSTANCE: stdbus.ERR_NO_SUCH_INSTANCE,
    RefusalReason.READ_ONLY: 0x80,
    RefusalReason.OUT_OF_RANGE: 0x80,
}
_MODBUS_CODES = {
    RefusalReason.NO_OBJECT: modbus.ILLEGAL_DATA_ADDRESS,
    RefusalReason.NO_ATTRIBUTE: modbus.ILLEGAL_DATA_ADDRESS,
    RefusalReason.NO_INSTANCE: modbus.ILLEGAL_DATA_ADDRESS,
    RefusalReason.READ_ONLY: modbus.ILLEGAL_DATA_ADDRESS,
    RefusalReason.OUT_OF_RANGE: modbus.ILLEGAL_DATA_VALUE,
}
# The injected "error_reply" fault: a failure code no request provokes by itself.
_DEVICE_FAILURE_STDBUS = 0x86
_DEVICE_FAILURE_MODBUS = modbus.SERVER_DEVICE_FAILURE
_GARBAGE = bytes.fromhex("00 13 37 de ad be ef 42")


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
    # register -> (parameter, instance, word index within the value)
    table: dict[int, tuple[ParamSpec, int, int]] = {}
    for spec in PARAMETERS:
        if spec.register is None:
            continue  # strings: Standard Bus only on a PM
        count = min(instances, spec.instances) if spec in LOOP_PARAMETERS else spec.instances
        for instance in range(1, count + 1):
            base = spec.register_for(instance)
            for index in range(spec.kind.registers):
                table[base + index] = (spec, instance, index)
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
        for controller in self.controllers.values():
            # The controllers' own communication settings say what the bus speaks.
            controller.settings[17043] = WORD_ORDER_ENUM[word_order]
            controller.settings[17009] = 1057 if protocol == "modbus_rtu" else 1286
            if wire_unit in UNITS_ENUM:
                controller.settings[17050] = UNITS_ENUM[wire_unit]
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

    def _cut(self) -> tuple[str, bytes] | None:
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
            length = modbus.request_length(buf)
            if length is None:
                return None
            total = len(buf) if length < 0 else length
            kind = "modbus"
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        return kind, raw

    def _apply_fault(  # noqa: PLR0911 - one exit per fault kind
        self, address: int, reply: bytes, error: bytes
    ) -> Outgoing | None:
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
        if fault.kind is FaultKind.GARBAGE:
            return Reply(_GARBAGE)
        return Disconnect()

    # ---------------------------------------------------------------- temperatures
    def _to_wire(self, spec: ParamSpec, value: Value) -> Value:
        if not spec.temperature or isinstance(value, str):
            return value
        return convert_temperature(float(value), "degC", self.wire_unit)

    def _from_wire(self, spec: ParamSpec, value: Value) -> Value:
        if not spec.temperature or isinstance(value, str):
            return value
        return convert_temperature(float(value), self.wire_unit, "degC")

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
                _, spec = controller.read(request.param_id, request.instance)
                if request.kind is not spec.kind:
                    raise Refusal(RefusalReason.OUT_OF_RANGE)  # wrong type for the parameter
                value, spec = controller.write(
                    request.param_id, request.instance, self._from_wire(spec, request.value)
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
        if isinstance(request, modbus.UnknownRequest):
            # A function the PM simulator does not implement: answer at once, as a slave
            # must, so the host fails fast instead of waiting for its timeout.
            unknown = modbus.ExceptionReply(request.unit, request.function, modbus.ILLEGAL_FUNCTION)
            raw_reply = modbus.encode_response(unknown)
            return self._apply_fault(request.unit, raw_reply, raw_reply)
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

    def _words(self, spec: ParamSpec, value: Value) -> list[int]:
        if isinstance(value, str):  # pragma: no cover - strings have no register
            raise Refusal(RefusalReason.NO_ATTRIBUTE)
        return encode_words(value, spec.kind, self.word_order)

    def _read_registers(
        self, controller: ControllerModel, start: int, count: int
    ) -> tuple[int, ...]:
        table = self._maps[controller.address]
        words: list[int] = []
        cache: dict[tuple[int, int], list[int]] = {}
        for register in range(start, start + count):
            entry = table.get(register)
            if entry is None:
                raise Refusal(RefusalReason.NO_ATTRIBUTE)
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
        if entry is None or entry[2] != 0:
            raise Refusal(RefusalReason.NO_ATTRIBUTE)  # writes must start at a value
        spec, instance, _ = entry
        if len(values) != spec.kind.registers:
            raise Refusal(RefusalReason.OUT_OF_RANGE)  # and cover exactly one value
        value = decode_words(values, spec.kind, self.word_order)
        controller.write(spec.param_id, instance, self._from_wire(spec, value))
