"""Modbus RTU codec for the EZ-Zone PM: frames, CRC and 32-bit word order (pure, no I/O).

The adapter talks Modbus through pymodbus; this module is what the simulator speaks and
what golden-frame tests pin down. A PM exposes every parameter as holding registers; a
32-bit value spans two registers whose order is configurable on the controller (Watlow's
default sends the **low** word first, ``word_order = "low_high"``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from capa_watlow.crc import modbus_crc

__all__ = [
    "EXCEPTION_CODES",
    "ExceptionReply",
    "ModbusFrameError",
    "ReadHolding",
    "ReadHoldingReply",
    "RequestAssembler",
    "WordOrder",
    "WriteMultiple",
    "WriteMultipleReply",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "float_to_registers",
    "registers_to_float",
    "registers_to_uint32",
    "uint32_to_registers",
]

WordOrder = Literal["low_high", "high_low"]
"""Order of the two 16-bit words of a 32-bit value: low word first (Watlow default) or high."""

READ_HOLDING = 0x03
WRITE_MULTIPLE = 0x10

EXCEPTION_CODES: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
}


class ModbusFrameError(ValueError):
    """Bytes that are not a valid Modbus RTU frame (bad CRC, bad length)."""


# ---------------------------------------------------------------- 32-bit values
def _words(raw: bytes, order: WordOrder) -> list[int]:
    high, low = struct.unpack(">HH", raw)
    return [low, high] if order == "low_high" else [high, low]


def _raw(registers: list[int] | tuple[int, ...], order: WordOrder) -> bytes:
    if len(registers) != 2:
        raise ValueError(f"a 32-bit value takes 2 registers, got {len(registers)}")
    first, second = registers
    high, low = (second, first) if order == "low_high" else (first, second)
    return struct.pack(">HH", high, low)


def float_to_registers(value: float, order: WordOrder = "low_high") -> list[int]:
    """Two registers holding ``value`` as float32 in ``order``."""
    return _words(struct.pack(">f", value), order)


def registers_to_float(
    registers: list[int] | tuple[int, ...], order: WordOrder = "low_high"
) -> float:
    """The float32 held by two registers in ``order``."""
    return float(struct.unpack(">f", _raw(registers, order))[0])


def uint32_to_registers(value: int, order: WordOrder = "low_high") -> list[int]:
    """Two registers holding unsigned ``value`` in ``order``."""
    return _words(struct.pack(">I", value), order)


def registers_to_uint32(
    registers: list[int] | tuple[int, ...], order: WordOrder = "low_high"
) -> int:
    """The unsigned 32-bit integer held by two registers in ``order``."""
    return int(struct.unpack(">I", _raw(registers, order))[0])


# ---------------------------------------------------------------- PDUs
@dataclass(frozen=True, slots=True)
class ReadHolding:
    """Function 0x03: read ``count`` holding registers from ``address``."""

    unit: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class WriteMultiple:
    """Function 0x10: write ``values`` from ``address``."""

    unit: int
    address: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadHoldingReply:
    """Reply to 0x03 with the register values."""

    unit: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteMultipleReply:
    """Reply to 0x10 echoing start address and count."""

    unit: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """Exception response: ``function`` with its high bit set, and a code."""

    unit: int
    function: int
    code: int

    @property
    def reason(self) -> str:
        """Human-readable meaning of :attr:`code`."""
        return EXCEPTION_CODES.get(self.code, f"exception code 0x{self.code:02X}")


Request = ReadHolding | WriteMultiple
Response = ReadHoldingReply | WriteMultipleReply | ExceptionReply


def _seal(body: bytes) -> bytes:
    return body + modbus_crc(body)


def _check(frame: bytes) -> bytes:
    if len(frame) < 4 or modbus_crc(frame[:-2]) != frame[-2:]:
        raise ModbusFrameError(f"bad CRC in {frame.hex(' ')}")
    return frame[:-2]


def encode_request(request: Request) -> bytes:
    """The RTU frame (with CRC) of ``request``."""
    if isinstance(request, ReadHolding):
        return _seal(
            struct.pack(">BBHH", request.unit, READ_HOLDING, request.address, request.count)
        )
    values = request.values
    return _seal(
        struct.pack(
            ">BBHHB", request.unit, WRITE_MULTIPLE, request.address, len(values), 2 * len(values)
        )
        + struct.pack(f">{len(values)}H", *values)
    )


def encode_response(response: Response) -> bytes:
    """The RTU frame (with CRC) of ``response``."""
    if isinstance(response, ReadHoldingReply):
        n = len(response.values)
        return _seal(
            struct.pack(">BBB", response.unit, READ_HOLDING, 2 * n)
            + struct.pack(f">{n}H", *response.values)
        )
    if isinstance(response, WriteMultipleReply):
        return _seal(
            struct.pack(">BBHH", response.unit, WRITE_MULTIPLE, response.address, response.count)
        )
    return _seal(struct.pack(">BBB", response.unit, response.function | 0x80, response.code))


def decode_request(frame: bytes) -> Request:
    """Parse a complete request frame (checks the CRC)."""
    body = _check(frame)
    unit, function = body[0], body[1]
    if function == READ_HOLDING and len(body) == 6:
        address, count = struct.unpack(">HH", body[2:6])
        return ReadHolding(unit, address, count)
    if function == WRITE_MULTIPLE and len(body) >= 7:
        address, count, nbytes = struct.unpack(">HHB", body[2:7])
        if nbytes != 2 * count or len(body) != 7 + nbytes:
            raise ModbusFrameError(f"inconsistent write length in {frame.hex(' ')}")
        return WriteMultiple(unit, address, struct.unpack(f">{count}H", body[7:]))
    raise ModbusFrameError(f"unsupported request {frame.hex(' ')}")


def decode_response(frame: bytes) -> Response:
    """Parse a complete response frame (checks the CRC)."""
    body = _check(frame)
    unit, function = body[0], body[1]
    if function & 0x80 and len(body) == 3:
        return ExceptionReply(unit, function & 0x7F, body[2])
    if function == READ_HOLDING and len(body) >= 3 and len(body) == 3 + body[2]:
        n = body[2] // 2
        return ReadHoldingReply(unit, struct.unpack(f">{n}H", body[3:]))
    if function == WRITE_MULTIPLE and len(body) == 6:
        address, count = struct.unpack(">HH", body[2:6])
        return WriteMultipleReply(unit, address, count)
    raise ModbusFrameError(f"unsupported response {frame.hex(' ')}")


class RequestAssembler:
    """Reassembles request frames from read chunks by the function's length rule.

    RTU frames are delimited by line silence on a real bus; over a byte stream the
    simulator instead computes each frame's length from its function code (0x03: 8
    bytes; 0x10: 9 + byte count). An unknown function discards the buffer, as a slave
    would after the inter-frame gap.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def clear(self) -> None:
        """Drop buffered bytes."""
        self._buf.clear()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return every complete request frame they finish."""
        self._buf += chunk
        out: list[bytes] = []
        while len(self._buf) >= 2:
            function = self._buf[1]
            if function == READ_HOLDING:
                total = 8
            elif function == WRITE_MULTIPLE:
                if len(self._buf) < 7:
                    break
                total = 9 + self._buf[6]
            else:
                self._buf.clear()
                break
            if len(self._buf) < total:
                break
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
        return out
