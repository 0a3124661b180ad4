"""xBPI (eXtended Balance Processor Interface, "X-Bus") codec: pure functions, no I/O.

xBPI is the binary protocol of Sartorius balances. Sartorius does not publish the full
telegram table (its manuals say to ask Sartorius), so this module fixes one concrete
layout with the elements the protocol is known to have -- a length-prefixed telegram, an
address byte, a command byte, typed parameters and a checksum -- and the simulator speaks
exactly this layout. The command numbers below are capa's; check them against a real
balance (``@pytest.mark.hardware`` tests) before relying on ``protocol = "xbpi"`` on a rig.

Telegram (both directions)::

    byte 0        LEN   bytes that follow, excluding the checksum (2..MAX_LEN)
    byte 1        ADDR  high nibble: destination, low nibble: source (0 = host)
    byte 2        CMD   request: command; reply: REPLY_OK or REPLY_ERROR
    (reply only)  ECHO  the command being answered
    bytes ...     typed parameters: a tag byte, then the value
    last byte     CHK   two's complement of the 8-bit sum of all preceding bytes,
                        so the sum of a whole telegram is 0 modulo 256

Parameter tags: ``0x11`` uint8, ``0x12`` int16, ``0x14`` int32 (big endian), ``0x24``
IEEE-754 float32 (big endian), ``0x30`` ASCII text (then one length byte, then the text).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from capa_sartorius.reading import Reading

__all__ = [
    "CMD_INTERNAL_ADJUST",
    "CMD_READ_MODEL",
    "CMD_READ_SERIAL",
    "CMD_READ_SOFTWARE",
    "CMD_READ_WEIGHT",
    "CMD_TARE",
    "CMD_ZERO",
    "ERROR_BUSY",
    "ERROR_NOT_POSSIBLE",
    "ERROR_UNKNOWN_COMMAND",
    "HOST_ADDRESS",
    "MAX_LEN",
    "REPLY_ERROR",
    "REPLY_OK",
    "STATUS_ADJUSTING",
    "STATUS_OVERLOAD",
    "STATUS_STABLE",
    "STATUS_UNDERLOAD",
    "Param",
    "Reply",
    "Request",
    "XbpiError",
    "checksum",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "frame_size",
    "reading_from_reply",
    "weight_params",
]

Param = int | float | str
"""A decoded parameter value."""

HOST_ADDRESS = 0x0
MAX_LEN = 250

CMD_READ_MODEL = 0x02
CMD_READ_SERIAL = 0x03
CMD_READ_SOFTWARE = 0x04
CMD_TARE = 0x14
CMD_ZERO = 0x15
CMD_INTERNAL_ADJUST = 0x16
CMD_READ_WEIGHT = 0x1E

REPLY_OK = 0x00
REPLY_ERROR = 0x01

ERROR_UNKNOWN_COMMAND = 0x01
ERROR_BAD_PARAMETER = 0x02
ERROR_NOT_POSSIBLE = 0x03
"""The balance cannot do it now (overload, outside the zero range)."""
ERROR_BUSY = 0x04
"""An adjustment is running."""
ERROR_TEXT: dict[int, str] = {
    ERROR_UNKNOWN_COMMAND: "unknown command",
    ERROR_BAD_PARAMETER: "bad parameter",
    ERROR_NOT_POSSIBLE: "not possible in the current state",
    ERROR_BUSY: "busy (adjustment running)",
}

STATUS_STABLE = 0x01
STATUS_OVERLOAD = 0x02
STATUS_UNDERLOAD = 0x04
STATUS_ADJUSTING = 0x08

_TAG_U8 = 0x11
_TAG_I16 = 0x12
_TAG_I32 = 0x14
_TAG_F32 = 0x24
_TAG_TEXT = 0x30
_INT_TAGS: dict[int, tuple[int, str]] = {
    _TAG_U8: (1, ">B"),
    _TAG_I16: (2, ">h"),
    _TAG_I32: (4, ">i"),
}


class XbpiError(ValueError):
    """Bytes that are not a valid xBPI telegram (length, checksum, parameter)."""


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request telegram (what the balance receives)."""

    address: int
    command: int
    params: tuple[Param, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """A decoded reply telegram (what the host receives)."""

    address: int
    ok: bool
    command: int
    params: tuple[Param, ...] = ()

    @property
    def error_code(self) -> int | None:
        """The balance's error code for an error reply, else ``None``."""
        if self.ok or not self.params or not isinstance(self.params[0], int):
            return None
        return self.params[0]

    def error_text(self) -> str:
        """Human-readable reason of an error reply."""
        code = self.error_code
        return f"xBPI error {code}: {ERROR_TEXT.get(code or -1, 'unknown error')}"


def checksum(data: bytes) -> int:
    """Two's complement of the 8-bit sum of ``data``."""
    return (-sum(data)) & 0xFF


def frame_size(first_byte: int) -> int:
    """Total telegram size announced by its first (length) byte.

    Raises:
        XbpiError: the byte cannot start a telegram (used to resynchronise on garbage).
    """
    if not 2 <= first_byte <= MAX_LEN:
        raise XbpiError(f"byte 0x{first_byte:02x} cannot start an xBPI telegram")
    return first_byte + 2


def _encode_param(value: Param) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if 0 <= value <= 0xFF:
            return bytes([_TAG_U8, value])
        if -0x8000 <= value <= 0x7FFF:
            return bytes([_TAG_I16]) + struct.pack(">h", value)
        return bytes([_TAG_I32]) + struct.pack(">i", value)
    if isinstance(value, float):
        return bytes([_TAG_F32]) + struct.pack(">f", value)
    raw = value.encode("ascii")
    if len(raw) > 0xFF:
        raise ValueError(f"xBPI text parameter longer than 255 bytes: {value!r}")
    return bytes([_TAG_TEXT, len(raw)]) + raw


def _decode_params(data: bytes) -> tuple[Param, ...]:
    params: list[Param] = []
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag in _INT_TAGS:
            size, fmt = _INT_TAGS[tag]
            chunk = data[i : i + size]
            if len(chunk) != size:
                raise XbpiError(f"truncated integer parameter (tag 0x{tag:02x})")
            params.append(struct.unpack(fmt, chunk)[0])
            i += size
        elif tag == _TAG_F32:
            chunk = data[i : i + 4]
            if len(chunk) != 4:
                raise XbpiError("truncated float parameter")
            params.append(struct.unpack(">f", chunk)[0])
            i += 4
        elif tag == _TAG_TEXT:
            if i >= len(data):
                raise XbpiError("text parameter without length")
            size = data[i]
            chunk = data[i + 1 : i + 1 + size]
            if len(chunk) != size:
                raise XbpiError("truncated text parameter")
            try:
                params.append(chunk.decode("ascii"))
            except UnicodeDecodeError as exc:
                raise XbpiError(f"non-ASCII text parameter {chunk!r}") from exc
            i += 1 + size
        else:
            raise XbpiError(f"unknown parameter tag 0x{tag:02x}")
    return tuple(params)


def _frame(body: bytes) -> bytes:
    if len(body) > MAX_LEN:
        raise ValueError(f"xBPI telegram body of {len(body)} bytes exceeds {MAX_LEN}")
    head = bytes([len(body)]) + body
    return head + bytes([checksum(head)])


def _unframe(frame: bytes, minimum: int) -> bytes:
    if len(frame) < 2:
        raise XbpiError(f"xBPI telegram too short: {frame!r}")
    size = frame_size(frame[0])
    if len(frame) != size:
        raise XbpiError(f"xBPI telegram announces {size} bytes but has {len(frame)}")
    if sum(frame) & 0xFF:
        raise XbpiError(
            f"xBPI checksum mismatch: got 0x{frame[-1]:02x}, expected 0x{checksum(frame[:-1]):02x}"
        )
    body = frame[1:-1]
    if len(body) < minimum:
        raise XbpiError(f"xBPI telegram body too short: {frame!r}")
    return body


def _address(destination: int, source: int) -> int:
    if not (0 <= destination <= 0xF and 0 <= source <= 0xF):
        raise ValueError("xBPI addresses are 0..15")
    return (destination << 4) | source


def encode_request(command: int, params: Sequence[Param] = (), *, address: int = 1) -> bytes:
    """Encode a request from the host to the balance at ``address``."""
    body = bytes([_address(address, HOST_ADDRESS), command])
    body += b"".join(_encode_param(p) for p in params)
    return _frame(body)


def decode_request(frame: bytes) -> Request:
    """Decode a request (balance side, used by the simulator)."""
    body = _unframe(frame, 2)
    return Request(address=body[0] >> 4, command=body[1], params=_decode_params(body[2:]))


def encode_reply(
    command: int,
    params: Sequence[Param] = (),
    *,
    ok: bool = True,
    address: int = 1,
) -> bytes:
    """Encode a reply from the balance at ``address`` to the host (simulator side)."""
    kind = REPLY_OK if ok else REPLY_ERROR
    body = bytes([_address(HOST_ADDRESS, address), kind, command])
    body += b"".join(_encode_param(p) for p in params)
    return _frame(body)


def decode_reply(frame: bytes) -> Reply:
    """Decode a reply telegram.

    Raises:
        XbpiError: wrong length, checksum mismatch, unknown reply kind or parameter tag.
    """
    body = _unframe(frame, 3)
    if body[1] not in (REPLY_OK, REPLY_ERROR):
        raise XbpiError(f"unknown xBPI reply kind 0x{body[1]:02x}")
    return Reply(
        address=body[0] & 0xF,
        ok=body[1] == REPLY_OK,
        command=body[2],
        params=_decode_params(body[3:]),
    )


def weight_params(
    value: float, unit: str, *, stable: bool, overload: bool = False, underload: bool = False
) -> tuple[Param, ...]:
    """Parameters of a weight reply: value (float32), status flags (uint8), unit (text)."""
    flags = (
        (STATUS_STABLE if stable else 0)
        | (STATUS_OVERLOAD if overload else 0)
        | (STATUS_UNDERLOAD if underload else 0)
    )
    return (float(value), flags, unit)


def reading_from_reply(reply: Reply) -> Reading:
    """Decode the parameters of a successful weight reply.

    Raises:
        XbpiError: the reply is an error or does not carry (float, flags, unit).
    """
    if not reply.ok:
        raise XbpiError(reply.error_text())
    if reply.command != CMD_READ_WEIGHT or len(reply.params) != 3:
        raise XbpiError(f"not a weight reply: {reply!r}")
    value, flags, unit = reply.params
    if not isinstance(value, float) or not isinstance(flags, int) or not isinstance(unit, str):
        raise XbpiError(f"weight reply parameters have the wrong types: {reply.params!r}")
    overload = bool(flags & STATUS_OVERLOAD)
    underload = bool(flags & STATUS_UNDERLOAD)
    # float32 carries ~7 significant digits; drop the binary noise beyond them.
    value = float(f"{value:.7g}")
    return Reading(
        value=float("nan") if overload or underload else value,
        unit=unit,
        stable=bool(flags & STATUS_STABLE) and not flags & STATUS_ADJUSTING,
        overload=overload,
        underload=underload,
    )
