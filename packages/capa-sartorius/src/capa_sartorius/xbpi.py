"""xBPI (eXtended Binary Processor Interface) codec: pure functions, no I/O.

xBPI is the binary protocol of Sartorius balances (Cubis, Secura, Quintix in binary mode,
BCE, WZA/WZG weigh cells). Sartorius does not publish it. The layout below is the one
captured on real balances (MSE1203S, WZA8202-N, BCE3202-1S) and spoken by the
independent, hardware-validated client ``sartoriuslib``; capa's oracle tests check this
module against that client and against its captured frames.

Request (host -> balance)::

    LEN  SRC  DST  OPCODE  ARGS...  CHK

Reply (balance -> host)::

    LEN  0x41  SUBTYPE  BODY...  CHK

``LEN`` counts every byte after itself, the checksum included (a frame is ``LEN + 1``
bytes). ``CHK`` is the plain 8-bit sum of all preceding bytes. ``SRC`` / ``DST`` are bus
node numbers (SBN): the host is ``0x01`` by convention and a point-to-point balance
answers destination ``0x09`` (its factory default) whatever its own SBN. Arguments are
tag-value pairs; tag ``0x21`` carries one unsigned byte.

The reply subtype names the body's shape: ``0x00`` acknowledge (empty body), ``0x01``
error (one code byte), ``0x21`` one byte, ``0x35`` float32 + one byte, ``0x45`` /
``0x4A`` 5 / 10-byte blobs, ``0x48`` an 8-byte measurement or status block, ``0x50`` /
``0x54`` 16 / 20-byte NUL-padded ASCII text.

Measurement body (8 bytes)::

    0-3  float32 big endian, the displayed value in the displayed unit
    4    auxiliary byte
    5    high nibble: decimal places shown
    6    top two bits: sign (00 zero, 01 positive, 10 negative); low six: unit
         (0x02 g, 0x03 kg, 0x0D mg, 0x17 N)
    7    flags; bit 0x40 = stable

An off-scale reading (overload, underload, or the cell busy re-zeroing) carries
``7F FF FF FF FF`` in bytes 0-4; the status block (opcode ``0x30``) says which: its
state byte (index 3) is ``0x82`` for overload and ``0x84`` for underload, and bit
``0x08`` of it means stable.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from capa_sartorius.reading import Reading

__all__ = [
    "ADJUST_INTERNAL",
    "BALANCE_SBN_DEFAULT",
    "ERROR_TEXT",
    "HOST_SBN",
    "OFF_SCALE",
    "OP_READ_FACTORY_NUMBER",
    "OP_READ_GROSS",
    "OP_READ_MANUFACTURER",
    "OP_READ_MODEL",
    "OP_READ_NET",
    "OP_READ_SBN",
    "OP_READ_SOFTWARE",
    "OP_READ_STATUS_BLOCK",
    "OP_START_ADJUSTMENT",
    "OP_TARE",
    "OP_ZERO",
    "REPLY_MARKER",
    "SUB_ACK",
    "SUB_ERROR",
    "SUB_MEASUREMENT",
    "TLV_U8",
    "UNIT_CODES",
    "Measurement",
    "Reply",
    "Request",
    "StatusBlock",
    "XbpiError",
    "checksum",
    "decode_factory_number",
    "decode_measurement",
    "decode_reply",
    "decode_request",
    "decode_software",
    "decode_status_block",
    "decode_text",
    "encode_measurement",
    "encode_reply",
    "encode_request",
    "encode_status_block",
    "encode_text",
    "frame_size",
    "reading_from_measurement",
    "tlv_u8",
]

HOST_SBN = 0x01
"""Bus node number of the host (by convention)."""
BALANCE_SBN_DEFAULT = 0x09
"""Destination a directly connected balance always answers (its factory SBN)."""
REPLY_MARKER = 0x41
"""Second byte of every balance -> host frame."""
TLV_U8 = 0x21
"""Argument tag: one unsigned byte follows."""

OP_READ_SOFTWARE = 0x00
OP_READ_FACTORY_NUMBER = 0x01
OP_READ_MODEL = 0x02
OP_READ_MANUFACTURER = 0x07
OP_READ_CAPACITY = 0x0C
OP_READ_INCREMENT = 0x0D
OP_TARE = 0x14
"""Combined tare (the TARE key); acknowledged when done."""
OP_ZERO = 0x18
OP_READ_NET = 0x1E
OP_READ_GROSS = 0x20
OP_READ_TARE = 0x22
OP_START_ADJUSTMENT = 0x28
"""Start an adjustment; its one-byte argument selects the kind."""
ADJUST_INTERNAL = 0x78
"""Argument of :data:`OP_START_ADJUSTMENT` for an internal adjustment (built-in weight)."""
OP_READ_STATUS_BLOCK = 0x30
OP_READ_SBN = 0x71

SUB_ACK = 0x00
SUB_ERROR = 0x01
SUB_U8 = 0x21
SUB_TYPED_FLOAT = 0x35
SUB_FACTORY_NUMBER = 0x45
SUB_MEASUREMENT = 0x48
SUB_SOFTWARE = 0x4A
SUB_TEXT16 = 0x50
SUB_TEXT20 = 0x54

ERR_OUT_OF_RANGE = 0x03
ERR_UNKNOWN_OPCODE = 0x04
ERR_NOT_APPLICABLE = 0x06
ERR_BAD_ARGS = 0x07
ERR_INDEX = 0x10
ERROR_TEXT: dict[int, str] = {
    ERR_OUT_OF_RANGE: "value out of range",
    ERR_UNKNOWN_OPCODE: "unknown opcode",
    ERR_NOT_APPLICABLE: "operation not applicable now",
    ERR_BAD_ARGS: "invalid or missing arguments",
    ERR_INDEX: "index out of range",
    0x11: "index out of range (BCE variant)",
}

UNIT_CODES: dict[int, str] = {0x02: "g", 0x03: "kg", 0x0D: "mg", 0x17: "N"}
"""Unit identifiers (low six bits of measurement byte 6) -> unit symbol."""
_UNIT_IDS = {unit: code for code, unit in UNIT_CODES.items()}
_SIGN_ZERO, _SIGN_POSITIVE, _SIGN_NEGATIVE = 0x00, 0x40, 0x80
STABLE_FLAG = 0x40
"""Bit of measurement byte 7 set while the reading is stable."""
OFF_SCALE = b"\x7f\xff\xff\xff\xff"
"""Bytes 0-4 of a measurement that has no value (overload, underload, cell busy)."""
STATE_STABLE_BIT = 0x08
STATE_OVERLOAD = 0x82
STATE_UNDERLOAD = 0x84

_MIN_LEN = 3  # marker, subtype, checksum: the shortest reply (an acknowledge)
_MEASUREMENT_LEN = 8


class XbpiError(ValueError):
    """Bytes that are not a valid xBPI frame or body.

    Attributes:
        kind: ``bad_checksum`` (a well-formed frame whose checksum is wrong) or
            ``garbage`` (bytes that do not form a frame or body).
    """

    def __init__(self, message: str, kind: str = "garbage") -> None:
        super().__init__(message)
        self.kind = kind


def checksum(data: bytes) -> int:
    """The xBPI checksum: the 8-bit sum of ``data``."""
    return sum(data) & 0xFF


def frame_size(first_byte: int) -> int:
    """Total size of a frame whose length byte is ``first_byte``.

    Raises:
        XbpiError: the byte cannot be a length byte (used to resynchronise on garbage).
    """
    if first_byte < _MIN_LEN:
        raise XbpiError(f"byte 0x{first_byte:02x} cannot start an xBPI frame")
    return first_byte + 1


def _frame(payload: bytes) -> bytes:
    length = len(payload) + 1  # the checksum follows the payload
    if length > 0xFF:
        raise ValueError(f"xBPI frame of {length + 1} bytes exceeds 256")
    head = bytes([length]) + payload
    return head + bytes([checksum(head)])


def _unframe(frame: bytes, minimum: int) -> bytes:
    """The payload between the length byte and the checksum, after validation."""
    if len(frame) < minimum + 2:
        raise XbpiError(f"xBPI frame too short: {frame.hex(' ')}")
    if frame[0] + 1 != len(frame):
        raise XbpiError(
            f"xBPI length byte announces {frame[0] + 1} bytes, got {len(frame)}: {frame.hex(' ')}"
        )
    expected = checksum(frame[:-1])
    if frame[-1] != expected:
        raise XbpiError(
            f"xBPI checksum 0x{frame[-1]:02x}, expected 0x{expected:02x}: {frame.hex(' ')}",
            kind="bad_checksum",
        )
    return frame[1:-1]


def tlv_u8(value: int) -> bytes:
    """A one-byte argument (tag ``0x21``)."""
    if not 0 <= value <= 0xFF:
        raise ValueError(f"xBPI u8 argument must be 0..255, got {value}")
    return bytes([TLV_U8, value])


@dataclass(frozen=True, slots=True)
class Request:
    """A host -> balance frame (decoded by the simulator)."""

    src: int
    dst: int
    opcode: int
    args: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    """A balance -> host frame."""

    subtype: int
    body: bytes
    raw: bytes

    @property
    def is_error(self) -> bool:
        """The balance refused the request."""
        return self.subtype == SUB_ERROR

    @property
    def error_code(self) -> int | None:
        """The refusal code, or ``None`` for a successful reply."""
        return self.body[0] if self.is_error and self.body else None

    def error_text(self) -> str:
        """``xBPI error 0x04 (unknown opcode)`` for a refusal."""
        code = self.error_code
        if code is None:
            return "no error"
        return f"xBPI error 0x{code:02x} ({ERROR_TEXT.get(code, 'unknown code')})"


def encode_request(
    opcode: int, args: bytes = b"", *, src: int = HOST_SBN, dst: int = BALANCE_SBN_DEFAULT
) -> bytes:
    """Encode a request frame."""
    for name, value in (("opcode", opcode), ("src", src), ("dst", dst)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"xBPI {name} must be 0..255, got {value}")
    return _frame(bytes([src, dst, opcode]) + bytes(args))


def decode_request(frame: bytes) -> Request:
    """Decode a request frame (balance side)."""
    payload = _unframe(frame, 3)
    return Request(src=payload[0], dst=payload[1], opcode=payload[2], args=bytes(payload[3:]))


def encode_reply(subtype: int, body: bytes = b"") -> bytes:
    """Encode a reply frame (balance side)."""
    return _frame(bytes([REPLY_MARKER, subtype]) + bytes(body))


def decode_reply(frame: bytes) -> Reply:
    """Decode a reply frame.

    Raises:
        XbpiError: wrong length, marker or checksum (``kind`` tells which family).
    """
    payload = _unframe(frame, 2)
    if payload[0] != REPLY_MARKER:
        raise XbpiError(f"xBPI reply marker 0x{payload[0]:02x}, expected 0x41: {frame.hex(' ')}")
    return Reply(subtype=payload[1], body=bytes(payload[2:]), raw=bytes(frame))


# ---------------------------------------------------------------------------- bodies
@dataclass(frozen=True, slots=True)
class Measurement:
    """A decoded 8-byte measurement body.

    Attributes:
        value: the displayed value, rounded to ``decimals`` (``None`` when off scale).
        unit: unit symbol (``g``, ``kg``, ``mg``, ``N``); empty for an unknown unit code.
        decimals: decimal places the balance shows.
        stable: the balance reports the reading stable.
        off_scale: the value bytes hold the off-scale marker.
        unit_code: the raw unit identifier.
    """

    value: float | None
    unit: str
    decimals: int
    stable: bool
    off_scale: bool
    unit_code: int


def decode_measurement(body: bytes) -> Measurement:
    """Decode an 8-byte measurement body (subtype ``0x48``)."""
    if len(body) != _MEASUREMENT_LEN:
        raise XbpiError(f"xBPI measurement body must be 8 bytes, got {body.hex(' ')}")
    decimals = body[5] >> 4
    code = body[6] & 0x3F
    off_scale = bytes(body[0:5]) == OFF_SCALE
    value: float | None = None
    if not off_scale:
        raw_value = struct.unpack(">f", body[0:4])[0]
        if not math.isfinite(raw_value):
            raise XbpiError(f"xBPI measurement value is not a number: {body.hex(' ')}")
        # float32 holds the displayed decimal number only approximately; the balance
        # states how many decimals it shows, so round back to exactly that number.
        value = round(raw_value, decimals)
    return Measurement(
        value=value,
        unit=UNIT_CODES.get(code, ""),
        decimals=decimals,
        stable=bool(body[7] & STABLE_FLAG),
        off_scale=off_scale,
        unit_code=code,
    )


def encode_measurement(value: float | None, unit: str, *, decimals: int, stable: bool) -> bytes:
    """Encode a measurement body (simulator side); ``value=None`` gives the off-scale marker."""
    if unit not in _UNIT_IDS:
        raise ValueError(f"xBPI has no unit code for {unit!r} (known: {sorted(_UNIT_IDS)})")
    if not 0 <= decimals <= 15:
        raise ValueError(f"decimals must be 0..15, got {decimals}")
    flags = 0x05 | (STABLE_FLAG if stable else 0)  # low bits as captured on a Cubis
    if value is None:
        return OFF_SCALE + bytes([decimals << 4, _UNIT_IDS[unit], flags])
    shown = round(value, decimals)
    packed = struct.pack(">f", shown)
    sign = _SIGN_ZERO if shown == 0 else (_SIGN_NEGATIVE if shown < 0 else _SIGN_POSITIVE)
    return packed + packed[3:4] + bytes([decimals << 4, sign | _UNIT_IDS[unit], flags])


@dataclass(frozen=True, slots=True)
class StatusBlock:
    """A decoded status block (opcode ``0x30``, subtype ``0x48``)."""

    state: int
    status: int
    sequence: int
    stable: bool
    overload: bool
    underload: bool


def decode_status_block(body: bytes) -> StatusBlock:
    """Decode an 8-byte status block."""
    if len(body) != _MEASUREMENT_LEN or body[1:3] != b"\x00\x81" or body[5:7] != b"\x10\x00":
        raise XbpiError(f"not an xBPI status block: {body.hex(' ')}")
    state = body[3]
    return StatusBlock(
        state=state,
        status=body[4],
        sequence=body[7],
        stable=bool(state & STATE_STABLE_BIT),
        overload=state == STATE_OVERLOAD,
        underload=state == STATE_UNDERLOAD,
    )


def encode_status_block(
    *, stable: bool, overload: bool = False, underload: bool = False, sequence: int = 0
) -> bytes:
    """Encode a status block as a Cubis sends it (simulator side)."""
    if overload:
        state = STATE_OVERLOAD
    elif underload:
        state = STATE_UNDERLOAD
    else:
        state = 0x80 | (STATE_STABLE_BIT if stable else 0)
    status = 0x18 if stable else 0x08
    return bytes([0x00, 0x00, 0x81, state, status, 0x10, 0x00, sequence & 0xFF])


def decode_text(body: bytes) -> str:
    """A NUL-padded ASCII text body (model, manufacturer)."""
    try:
        return bytes(body).rstrip(b"\x00 ").decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise XbpiError(f"xBPI text is not ASCII: {body.hex(' ')}") from exc


def encode_text(text: str, size: int) -> bytes:
    """Encode ``text`` as a NUL-padded ASCII body of ``size`` bytes (simulator side)."""
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"xBPI text {text!r} longer than {size} bytes")
    return raw.ljust(size, b"\x00")


def decode_factory_number(body: bytes) -> str:
    """The serial number from a factory-number body: its bytes as hex digits.

    A balance printing ``SerNo. 0031801165`` over SBI answers ``00 31 80 11 65`` here.
    """
    return bytes(body).hex()


def decode_software(body: bytes) -> str:
    """The software version from a software body: its first three bytes, ``00-39-21``.

    The balance that prints ``BAC: 00-39-21`` over SBI answers
    ``00 39 21 00 39 01 39 01 00 01`` here; the rest of the blob is kept raw by callers.
    """
    if len(body) < 3:
        raise XbpiError(f"xBPI software body too short: {body.hex(' ')}")
    return "-".join(f"{b:02x}" for b in body[:3])


def reading_from_measurement(m: Measurement, status: StatusBlock | None = None) -> Reading:
    """Turn a measurement (and, for an off-scale one, the status block) into a reading.

    An off-scale measurement without overload / underload in the status block is the cell
    busy (re-zeroing): no value, not stable, no range flag.
    """
    if not m.off_scale:
        assert m.value is not None
        return Reading(value=m.value, unit=m.unit, stable=m.stable)
    overload = status is not None and status.overload
    underload = status is not None and status.underload
    return Reading(
        value=math.nan,
        unit=m.unit,
        stable=False,
        overload=overload,
        underload=underload,
        busy=not (overload or underload),
    )
