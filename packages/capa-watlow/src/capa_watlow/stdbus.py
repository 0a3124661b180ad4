"""Watlow Standard Bus codec: pure functions from messages to bytes and back (no I/O).

Standard Bus, the EZ-Zone factory-default protocol, carries Watlow services in BACnet
MS/TP frames::

    55 FF | type | dst | src | len_hi len_lo | hdr_crc | data ... | crc_lo crc_hi

``type`` is 0x05 for a request (data expecting reply) and 0x06 for a reply; a controller
at Standard Bus address *n* (1-16) has MS/TP address ``0x0F + n`` and the host is 0x00.
The header check is the BACnet CRC-8 of the five bytes before it, the data check the
BACnet CRC-16 of the data (present only when ``len > 0``). Service payloads address a
parameter by class, member and instance (parameter id 4001 = class 4, member 1):

==============  =====================================================
read request    ``01 03 01 cls mem inst``
read reply      ``02 03 01 cls mem inst <value>``
write request   ``01 04 cls mem inst <value>``
write reply     ``02 04 cls mem inst <value>``
error reply     ``02 <code>`` with ``code >= 0x80``
==============  =====================================================

``<value>`` is a type tag and the value, big-endian (tags as a PM3 sends them, each
seen in captured traffic published with watlowlib 0.8.1):

=====  =====================  ==========================================
tag    type                   layout after the tag
=====  =====================  ==========================================
0x01   unsigned 8-bit         1 byte
0x03   unsigned 16-bit        2 bytes
0x05   unsigned 32-bit        4 bytes
0x06   signed 32-bit          4 bytes (Hardware ID 1001: ``06 00 00 00 1c``)
0x08   IEEE-754 float32       4 bytes
0x09   string                 length byte + ASCII (NUL-padded within it)
0x0F   (wide) enumeration     word count byte (1 on every capture) + words
=====  =====================  ==========================================

Error replies (``02 <code>``) seen from a PM3: 0x81 no such object (class), 0x83 no
such attribute (member), 0x84 no such instance.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from capa_watlow.crc import bacnet_data_crc, bacnet_header_crc
from capa_watlow.params import ParamKind

__all__ = [
    "ERROR_CODES",
    "ERR_NO_SUCH_ATTRIBUTE",
    "ERR_NO_SUCH_INSTANCE",
    "ERR_NO_SUCH_OBJECT",
    "HOST_ADDRESS",
    "PREAMBLE",
    "REPLY",
    "REQUEST",
    "TAGS",
    "ErrorReply",
    "Frame",
    "FrameAssembler",
    "FrameChecksumError",
    "FrameError",
    "ReadRequest",
    "Reply",
    "Value",
    "WriteRequest",
    "build_reply",
    "build_request",
    "decode_payload",
    "decode_request",
    "decode_value",
    "device_mac",
    "encode_frame",
    "encode_payload",
    "encode_value",
    "mac_to_address",
]

PREAMBLE = b"\x55\xff"
REQUEST = 0x05
"""MS/TP frame type *BACnet data expecting reply*: every host request."""
REPLY = 0x06
"""MS/TP frame type *BACnet data not expecting reply*: every controller reply."""
HOST_ADDRESS = 0x00
HEADER_LEN = 8  # preamble (2) + type, dst, src, len (2) + header CRC
MAX_DATA = 64  # Watlow payloads are short; a longer length field means a garbled header

TAG_U8 = 0x01
TAG_U16 = 0x03
TAG_U32 = 0x05
TAG_S32 = 0x06
TAG_FLOAT = 0x08
TAG_STRING = 0x09
TAG_ENUM = 0x0F

TAGS: dict[ParamKind, int] = {
    ParamKind.U8: TAG_U8, ParamKind.U16: TAG_U16, ParamKind.U32: TAG_U32,
    ParamKind.S32: TAG_S32, ParamKind.FLOAT: TAG_FLOAT, ParamKind.STRING: TAG_STRING,
    ParamKind.ENUM: TAG_ENUM,
}  # fmt: skip
"""Standard Bus type tag of each wire encoding."""
_KINDS = {tag: kind for kind, tag in TAGS.items()}

_FIXED = {TAG_U8: ">B", TAG_U16: ">H", TAG_U32: ">I", TAG_S32: ">i", TAG_FLOAT: ">f"}

ERR_NO_SUCH_OBJECT = 0x81
ERR_NO_SUCH_ATTRIBUTE = 0x83
ERR_NO_SUCH_INSTANCE = 0x84

ERROR_CODES: dict[int, str] = {
    ERR_NO_SUCH_OBJECT: "no such object (the controller has no parameter class of this id)",
    ERR_NO_SUCH_ATTRIBUTE: "no such attribute (the controller has no parameter of this id)",
    ERR_NO_SUCH_INSTANCE: "no such instance (the parameter exists, this loop or channel does not)",
}
"""Error reply codes, as a PM3 sends them (watlowlib's captures). Other codes are
reported by number: their meaning is not established."""

Value = float | int | str
"""A decoded parameter value: float for 0x08, int for integer tags, str for strings."""


class FrameError(ValueError):
    """Bytes that are not a valid frame or payload (bad CRC, bad length, unknown service)."""


class FrameChecksumError(FrameError):
    """A frame whose header CRC-8 or data CRC-16 does not match its contents."""


def device_mac(address: int) -> int:
    """MS/TP address of the controller at Standard Bus ``address`` (1-16)."""
    if not 1 <= address <= 16:
        raise ValueError(f"Standard Bus address must be 1-16, got {address}")
    return 0x0F + address


def mac_to_address(mac: int) -> int | None:
    """Standard Bus address of MS/TP address ``mac``, or ``None`` if it is no controller."""
    address = mac - 0x0F
    return address if 1 <= address <= 16 else None


@dataclass(frozen=True, slots=True)
class Frame:
    """One MS/TP frame."""

    frame_type: int
    destination: int
    source: int
    data: bytes = b""


def encode_frame(frame: Frame) -> bytes:
    """Serialize ``frame`` with both checks."""
    header = bytes((frame.frame_type, frame.destination, frame.source)) + struct.pack(
        ">H", len(frame.data)
    )
    out = PREAMBLE + header + bytes((bacnet_header_crc(header),))
    if frame.data:
        out += frame.data + bacnet_data_crc(frame.data)
    return out


class FrameAssembler:
    """Reassembles frames from arbitrary read chunks, by the length in the header.

    Feed it whatever the port returned; it hunts for the preamble, checks the header
    CRC, waits for exactly ``len + 2`` more bytes and checks the data CRC. Garbage
    before a preamble is skipped; a bad check yields a :class:`FrameError` in the output
    so the caller can count it as a garbled reply.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def clear(self) -> None:
        """Drop buffered bytes (after a timeout, before the next request)."""
        self._buf.clear()

    def needed(self) -> int:
        """Bytes still missing for the frame in progress (at least 1)."""
        if len(self._buf) < HEADER_LEN:
            return HEADER_LEN - len(self._buf)
        (length,) = struct.unpack_from(">H", self._buf, 5)
        total = HEADER_LEN + (length + 2 if length else 0)
        return max(1, total - len(self._buf))

    def feed(self, chunk: bytes) -> list[Frame | FrameError]:
        """Add bytes; return every complete frame (or framing error) they finish."""
        self._buf += chunk
        out: list[Frame | FrameError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _next(self) -> Frame | FrameError | None:  # noqa: PLR0911 - one exit per framing case
        buf = self._buf
        start = buf.find(PREAMBLE)
        if start < 0:
            # Keep a trailing 0x55: it may be the first half of the next preamble.
            del buf[: len(buf) - 1 if buf.endswith(b"\x55") else len(buf)]
            return None
        del buf[:start]
        if len(buf) < HEADER_LEN:
            return None
        header = bytes(buf[2:7])
        (length,) = struct.unpack(">H", header[3:5])
        if bacnet_header_crc(header) != buf[7]:
            bad = bytes(buf[:8])
            del buf[:1]  # resynchronise on the next preamble
            return FrameChecksumError(f"bad header check in {bad.hex(' ')}")
        if length > MAX_DATA:
            bad = bytes(buf[:8])
            del buf[:1]
            return FrameError(f"implausible frame length {length} in {bad.hex(' ')}")
        total = HEADER_LEN + (length + 2 if length else 0)
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        data = raw[HEADER_LEN : HEADER_LEN + length]
        if length and bacnet_data_crc(data) != raw[-2:]:
            return FrameChecksumError(f"bad data check in {raw.hex(' ')}")
        return Frame(raw[2], raw[3], raw[4], data)


# ---------------------------------------------------------------- service payloads
@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Read parameter ``param_id`` of ``instance``."""

    param_id: int
    instance: int = 1


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Write ``value`` (encoded as ``kind``) to parameter ``param_id`` of ``instance``."""

    param_id: int
    instance: int
    value: Value
    kind: ParamKind = ParamKind.FLOAT


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful read or write reply carrying the parameter's (new) value."""

    service: int  # 0x03 read, 0x04 write
    param_id: int
    instance: int
    value: Value
    kind: ParamKind


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A refusal: the controller understood the request and declined it."""

    code: int

    @property
    def reason(self) -> str:
        """Human-readable meaning of :attr:`code`."""
        return ERROR_CODES.get(self.code, f"error code 0x{self.code:02X}")


Message = ReadRequest | WriteRequest | Reply | ErrorReply


def _split_id(param_id: int, instance: int) -> bytes:
    cls, member = divmod(param_id, 1000)
    if not (0 < cls < 256 and 0 <= member < 256 and 0 < instance < 256):
        raise ValueError(f"parameter {param_id} instance {instance} cannot be addressed")
    return bytes((cls, member, instance))


def encode_value(value: Value, kind: ParamKind, *, terminate: bool = False) -> bytes:
    """Tag and bytes of ``value`` encoded as ``kind``.

    ``terminate`` appends a NUL inside a string's length, as a PM does in its replies
    (captured: Device Name ``09 0B`` + "EZ-ZONE PM" + ``00``).

    Raises:
        ValueError: the value does not fit the encoding (range, type, length).
    """
    tag = TAGS[kind]
    if kind is ParamKind.STRING:
        if not isinstance(value, str):
            raise ValueError(f"a string parameter needs a str value, got {value!r}")
        raw = value.encode("ascii") + (b"\x00" if terminate else b"")
        if len(raw) > 0xFF:
            raise ValueError(f"string of {len(raw)} bytes is too long for the wire (max 255)")
        return bytes((tag, len(raw))) + raw
    if isinstance(value, str):
        raise ValueError(f"a {kind} parameter needs a number, got {value!r}")
    if kind is ParamKind.FLOAT:
        return bytes((tag,)) + struct.pack(">f", float(value))
    number = int(value)
    if number != value:
        raise ValueError(f"{kind} parameter needs a whole number, got {value!r}")
    if kind is ParamKind.ENUM:
        fmt = ">H"
        prefix = bytes((tag, 0x01))  # one 16-bit word, as every captured enumeration
    else:
        fmt = _FIXED[tag]
        prefix = bytes((tag,))
    try:
        return prefix + struct.pack(fmt, number)
    except struct.error:
        raise ValueError(f"{number} does not fit a {kind} parameter") from None


def decode_value(raw: bytes) -> tuple[Value, ParamKind]:
    """Decode one tagged value that fills ``raw`` exactly.

    Raises:
        FrameError: unknown tag, or a length that does not match the tag.
    """
    if not raw:
        raise FrameError("reply carries no value")
    tag = raw[0]
    kind = _KINDS.get(tag)
    if tag in _FIXED:
        fmt = _FIXED[tag]
        if len(raw) == 1 + struct.calcsize(fmt):
            (number,) = struct.unpack(fmt, raw[1:])
            return (float(number) if tag == TAG_FLOAT else int(number)), _KINDS[tag]
    elif tag == TAG_STRING and len(raw) >= 2 and len(raw) == 2 + raw[1]:
        text = raw[2:].split(b"\x00", 1)[0]
        return text.decode("ascii", errors="replace"), ParamKind.STRING
    elif tag == TAG_ENUM and len(raw) >= 2 and raw[1] >= 1 and len(raw) == 2 + 2 * raw[1]:
        number = int.from_bytes(raw[2:], "big")  # one word on every capture; more: high first
        return number, ParamKind.ENUM
    if kind is None:
        raise FrameError(f"unknown value encoding (type 0x{tag:02X}) {raw.hex(' ')}")
    raise FrameError(f"malformed {kind} value {raw.hex(' ')}")


def encode_payload(message: Message) -> bytes:
    """The data field of ``message``."""
    if isinstance(message, ReadRequest):
        return b"\x01\x03\x01" + _split_id(message.param_id, message.instance)
    if isinstance(message, WriteRequest):
        return (
            b"\x01\x04"
            + _split_id(message.param_id, message.instance)
            + encode_value(message.value, message.kind)
        )
    if isinstance(message, Reply):
        service = b"\x02\x03\x01" if message.service == 0x03 else b"\x02\x04"
        return (
            service
            + _split_id(message.param_id, message.instance)
            + encode_value(message.value, message.kind, terminate=True)
        )
    return bytes((0x02, message.code))


def decode_request(data: bytes) -> ReadRequest | WriteRequest:
    """Parse a request payload (the simulator's side)."""
    if data[:3] == b"\x01\x03\x01" and len(data) == 6:
        return ReadRequest(data[3] * 1000 + data[4], data[5])
    if data[:2] == b"\x01\x04" and len(data) >= 6:
        value, kind = decode_value(data[5:])
        return WriteRequest(data[2] * 1000 + data[3], data[4], value, kind)
    raise FrameError(f"unknown request payload {data.hex(' ')}")


def decode_payload(data: bytes) -> Reply | ErrorReply:
    """Parse a reply payload (the host's side)."""
    if len(data) == 2 and data[0] == 0x02 and data[1] >= 0x80:
        return ErrorReply(data[1])
    if data[:3] == b"\x02\x03\x01" and len(data) >= 7:
        value, kind = decode_value(data[6:])
        return Reply(0x03, data[3] * 1000 + data[4], data[5], value, kind)
    if data[:2] == b"\x02\x04" and len(data) >= 6:
        value, kind = decode_value(data[5:])
        return Reply(0x04, data[2] * 1000 + data[3], data[4], value, kind)
    raise FrameError(f"unknown reply payload {data.hex(' ')}")


def build_request(address: int, message: ReadRequest | WriteRequest) -> bytes:
    """Complete request frame from the host to the controller at ``address``."""
    return encode_frame(Frame(REQUEST, device_mac(address), HOST_ADDRESS, encode_payload(message)))


def build_reply(address: int, message: Reply | ErrorReply, host: int = HOST_ADDRESS) -> bytes:
    """Complete reply frame from the controller at ``address`` to ``host``."""
    return encode_frame(Frame(REPLY, host, device_mac(address), encode_payload(message)))
