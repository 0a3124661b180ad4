"""Modbus RTU codec for the EZ-Zone PM: frames, CRC and 32-bit word order (pure, no I/O).

Both sides use it: the driver's client (:mod:`capa_watlow.client`, requests out and
replies reassembled by :class:`ResponseAssembler`) and the simulator. A PM exposes every
parameter as holding registers; a 32-bit value spans two registers whose order is the
controller's Modbus Word Order setting (parameter 17043, register 2488: 1331 Low_High,
the factory default, or 1330 High_Low -- PM register map), ``word_order`` here.

Exception codes are those of the Modbus application protocol specification v1.1b3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from capa_watlow.crc import modbus_crc

__all__ = [
    "EXCEPTION_CODES",
    "ExceptionReply",
    "ModbusChecksumError",
    "ModbusFrameError",
    "ReadHolding",
    "ReadHoldingReply",
    "RequestAssembler",
    "ResponseAssembler",
    "UnknownRequest",
    "WordOrder",
    "WriteMultiple",
    "WriteMultipleReply",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "float_to_registers",
    "int32_to_registers",
    "registers_to_float",
    "registers_to_int32",
    "registers_to_uint32",
    "uint32_to_registers",
]

WordOrder = Literal["low_high", "high_low"]
"""Order of the two 16-bit words of a 32-bit value: low word first (Watlow default) or high."""

READ_HOLDING = 0x03
WRITE_MULTIPLE = 0x10

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

EXCEPTION_CODES: dict[int, str] = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_DATA_ADDRESS: "illegal data address",
    ILLEGAL_DATA_VALUE: "illegal data value",
    SERVER_DEVICE_FAILURE: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

# Request length by function code (Modbus over serial line): fixed 8-byte requests, and
# those whose length is 9 + the byte count at offset 6 (offset 10 for 0x17).
_FIXED_REQUEST = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06}
_COUNTED_REQUEST = {0x0F: 6, 0x10: 6}


class ModbusFrameError(ValueError):
    """Bytes that are not a valid Modbus RTU frame (bad CRC, bad length)."""


class ModbusChecksumError(ModbusFrameError):
    """A complete frame whose CRC does not match its contents."""


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


def int32_to_registers(value: int, order: WordOrder = "low_high") -> list[int]:
    """Two registers holding signed ``value`` in ``order``."""
    return _words(struct.pack(">i", value), order)


def registers_to_int32(
    registers: list[int] | tuple[int, ...], order: WordOrder = "low_high"
) -> int:
    """The signed 32-bit integer held by two registers in ``order``."""
    return int(struct.unpack(">i", _raw(registers, order))[0])


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
class UnknownRequest:
    """A well-formed request with a function this codec does not implement."""

    unit: int
    function: int


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


Request = ReadHolding | WriteMultiple | UnknownRequest
Response = ReadHoldingReply | WriteMultipleReply | ExceptionReply


def _seal(body: bytes) -> bytes:
    return body + modbus_crc(body)


def _check(frame: bytes) -> bytes:
    if len(frame) < 4:
        raise ModbusFrameError(f"frame too short: {frame.hex(' ')}")
    if modbus_crc(frame[:-2]) != frame[-2:]:
        raise ModbusChecksumError(f"bad CRC in {frame.hex(' ')}")
    return frame[:-2]


def encode_request(request: Request) -> bytes:
    """The RTU frame (with CRC) of ``request``."""
    if isinstance(request, ReadHolding):
        return _seal(
            struct.pack(">BBHH", request.unit, READ_HOLDING, request.address, request.count)
        )
    if isinstance(request, UnknownRequest):
        raise ValueError(f"cannot encode function 0x{request.function:02X}")
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
    if function in (READ_HOLDING, WRITE_MULTIPLE):
        raise ModbusFrameError(f"malformed request {frame.hex(' ')}")
    return UnknownRequest(unit, function)


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


def request_length(buf: bytes | bytearray) -> int | None:
    """Length of the request frame at the start of ``buf``; ``None`` until it is known.

    Known function codes have a length rule; for any other code the frame is taken to be
    everything buffered (on a real line, the silence after the frame ends it; the
    simulator reads each host write as one chunk). ``-1`` means "all of ``buf``".
    """
    if len(buf) < 2:
        return None
    function = buf[1]
    if function in _FIXED_REQUEST:
        return 8
    if function in _COUNTED_REQUEST:
        at = _COUNTED_REQUEST[function]
        return None if len(buf) <= at else 9 + buf[at]
    if function == 0x17:  # read/write multiple registers
        return None if len(buf) <= 10 else 13 + buf[10]
    return -1


class RequestAssembler:
    """Cuts request frames out of read chunks by the function's length rule.

    Over a byte stream there is no line silence to end a frame, so a frame's length
    comes from its function code (:func:`request_length`); a frame of an unknown
    function is everything buffered.
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
        while (total := request_length(self._buf)) is not None:
            if total < 0:
                total = len(self._buf)
            if len(self._buf) < total:
                break
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
        return out


class ResponseAssembler:
    """Reassembles one response frame from read chunks (the host's side).

    The frame's length follows from its function code: an exception response is 5
    bytes, a read reply 5 + its byte count, a write echo 8. :meth:`needed` says how
    many more bytes to read; :meth:`frame` returns the complete frame once it is in.
    Bytes that cannot start a response for ``function`` raise :class:`ModbusFrameError`.
    """

    def __init__(self, unit: int, function: int) -> None:
        self.unit = unit
        self.function = function
        self._buf = bytearray()

    @property
    def received(self) -> int:
        """Bytes fed so far."""
        return len(self._buf)

    def _total(self) -> int | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        if buf[0] != self.unit:
            raise ModbusFrameError(
                f"reply from unit {buf[0]} to a request for unit {self.unit}: {buf.hex(' ')}"
            )
        if buf[1] == self.function | 0x80:
            return 5
        if buf[1] != self.function:
            raise ModbusFrameError(
                f"reply with function 0x{buf[1]:02X} to function 0x{self.function:02X}: "
                f"{buf.hex(' ')}"
            )
        if self.function in (0x01, 0x02, 0x03, 0x04, 0x17):
            return None if len(buf) < 3 else 5 + buf[2]
        return 8

    def needed(self) -> int:
        """Bytes still missing (at least 1 while the frame is incomplete, else 0)."""
        total = self._total()
        if total is None:
            return 3 - len(self._buf) if len(self._buf) < 3 else 1
        return max(0, total - len(self._buf))

    def feed(self, chunk: bytes) -> bytes | None:
        """Add bytes; return the complete frame when it is in (extra bytes are an error)."""
        self._buf += chunk
        total = self._total()
        if total is None or len(self._buf) < total:
            return None
        if len(self._buf) > total:
            raise ModbusFrameError(f"{len(self._buf) - total} stray bytes after the reply")
        return bytes(self._buf)
