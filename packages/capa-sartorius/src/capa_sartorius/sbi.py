"""SBI (Sartorius Balance Interface) codec: pure functions, no I/O.

SBI is the ASCII protocol of Sartorius balances (Entris, Quintix, Secura, Cubis, Signum...).

Commands sent to the balance are ``ESC <command> CR LF`` (format 1: one letter, ``ESC P``)
or ``ESC <letter><digit> _ CR LF`` (format 2: ``ESC x1_``); CR LF is optional for the
balance but always sent here. Commands other than print and the info requests produce no
reply, so SBI cannot report a refusal.

Weight lines are 16 characters (14 printable + CR LF)::

    pos 1      sign: '+', '-' or space
    pos 2      space (or '[' around a non-verified digit)
    pos 3-10   value, right aligned, with decimal point; leading zeros are spaces
    pos 11     space (or ']')
    pos 12-14  unit symbol, left aligned -- all blank while the reading is not stable
    pos 15-16  CR LF

or 22 characters when a 6-character identification header (``N     ``, ``G     ``,
``Stat  ``) precedes the 16. Special lines replace the value: ``High`` / ``H`` / ``HH``
(overload), ``Low`` / ``L`` / ``LL`` (underload), ``C`` (adjustment running) and error
lines ``   Err ##`` (2 or 3 digits).
"""

from __future__ import annotations

import math
import re

from capa_sartorius.reading import Reading

__all__ = [
    "BODY_LEN",
    "ESC",
    "IDENT_LEN",
    "INTERNAL_ADJUST",
    "MODEL",
    "PRINT",
    "SERIAL",
    "SOFTWARE",
    "TARE",
    "TARE_ZERO",
    "ZERO",
    "SbiParseError",
    "command",
    "format_error",
    "format_special",
    "format_text",
    "format_weight",
    "parse_command",
    "parse_line",
    "parse_text",
]

ESC = 0x1B
CRLF = b"\r\n"
BODY_LEN = 14
"""Printable characters of a line without identification header."""
IDENT_LEN = 6
"""Characters of the identification header of a 22-character line."""
VALUE_WIDTH = 8


def command(code: str) -> bytes:
    """Encode an SBI command: ``command("P")`` is ESC ``P`` CR LF."""
    if not code or not code.isascii() or not code.isprintable():
        raise ValueError(f"SBI command must be printable ASCII, got {code!r}")
    return bytes([ESC]) + code.encode("ascii") + CRLF


PRINT = command("P")
"""Print (send) the current reading."""
TARE_ZERO = command("T")
"""The TARE key: zero when the load is within the zero range, otherwise tare."""
TARE = command("U")
"""Tare only."""
ZERO = command("V")
"""Zero only."""
INTERNAL_ADJUST = command("Z")
"""Internal calibration/adjustment (balances with a built-in weight)."""
MODEL = command("x1_")
"""Print the model designation."""
SERIAL = command("x2_")
"""Print the serial number."""
SOFTWARE = command("x3_")
"""Print the weighing-cell software version."""


class SbiParseError(ValueError):
    """Bytes that are not a valid SBI line or command."""


def parse_command(raw: bytes) -> str:
    """Decode a command sent to the balance (for the simulator): ESC ``P`` CR LF -> ``"P"``.

    The trailing CR / LF are optional, as on a real balance.
    """
    if not raw or raw[0] != ESC:
        raise SbiParseError(f"SBI command must start with ESC, got {raw!r}")
    body = raw[1:].rstrip(b"\r\n")
    if not body or not body.isascii():
        raise SbiParseError(f"empty or non-ASCII SBI command {raw!r}")
    return body.decode("ascii")


# ---------------------------------------------------------------------------- output lines
def _with_ident(body: str, ident: str | None) -> bytes:
    if len(body) != BODY_LEN:
        raise ValueError(f"SBI line body must be {BODY_LEN} characters, got {body!r}")
    if ident is not None:
        if len(ident) > IDENT_LEN:
            raise ValueError(f"SBI identification header is at most 6 characters: {ident!r}")
        body = ident.ljust(IDENT_LEN) + body
    return body.encode("ascii") + CRLF


def format_weight(
    value: float,
    unit: str,
    *,
    stable: bool,
    decimals: int = 4,
    ident: str | None = None,
) -> bytes:
    """Encode a weight line (16 characters, or 22 with ``ident``).

    ``decimals`` is the balance's readability; fewer are used when the number would not fit
    the 8-character value field. The unit field is blank when ``stable`` is false.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot print a non-finite weight {value!r}")
    sign = "-" if value < 0 else "+"
    for places in range(decimals, -1, -1):
        digits = f"{abs(value):.{places}f}"
        if len(digits) <= VALUE_WIDTH:
            break
    else:  # pragma: no cover - only reached for values beyond 8 integer digits
        raise ValueError(f"weight {value!r} does not fit the SBI value field")
    unit_field = unit if stable else ""
    if len(unit_field) > 3:
        raise ValueError(f"SBI unit symbol is at most 3 characters: {unit!r}")
    body = f"{sign} {digits:>{VALUE_WIDTH}} {unit_field:<3}"
    return _with_ident(body, ident)


def format_special(word: str, *, ident: str | None = None) -> bytes:
    """Encode a special line: ``High``, ``Low``, ``H``, ``HH``, ``L``, ``LL`` or ``C``."""
    if word not in _SPECIALS:
        raise ValueError(f"unknown SBI special code {word!r}")
    return _with_ident(f"{'':6}{word:<8}", ident)


def format_error(code: int, *, ident: str | None = None) -> bytes:
    """Encode an error line ``   Err ##`` (2 or 3 digits)."""
    if not 0 <= code <= 999:
        raise ValueError(f"SBI error code must be 0..999, got {code}")
    digits = f"{code:02d}"
    body = f"   Err  {digits}    " if len(digits) == 2 else f"   Err {digits}    "
    return _with_ident(body, ident)


def format_text(text: str) -> bytes:
    """Encode an information reply (model, serial number, version) as a text line."""
    if not text.isascii() or "\r" in text or "\n" in text:
        raise ValueError(f"SBI text must be one ASCII line: {text!r}")
    return text.encode("ascii") + CRLF


# ---------------------------------------------------------------------------- parsing
_SPECIALS: dict[str, tuple[bool, bool]] = {
    # word -> (overload, underload)
    "High": (True, False),
    "H": (True, False),
    "HH": (True, False),
    "Low": (False, True),
    "L": (False, True),
    "LL": (False, True),
    "C": (False, False),
}
_ERROR = re.compile(r"^(?:Err|ERR)\s*(\d{2,3})$")
_NUMBER = re.compile(r"^\d*\.?\d+$|^\d+\.$")


def _split(line: bytes) -> tuple[str, str]:
    if not line.endswith(CRLF):
        raise SbiParseError(f"SBI line must end with CR LF: {line!r}")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError as exc:
        raise SbiParseError(f"non-ASCII byte in SBI line {line!r}") from exc
    if not text.isprintable():
        raise SbiParseError(f"control character inside SBI line {line!r}")
    if len(text) == BODY_LEN:
        return "", text
    if len(text) == BODY_LEN + IDENT_LEN:
        return text[:IDENT_LEN].strip(), text[IDENT_LEN:]
    raise SbiParseError(f"SBI line is {len(line)} bytes, expected 16 or 22: {line!r}")


_STATUS_WORDS = frozenset({"CAL.INT.", "CAL. INT.", "CAL.EXT.", "CAL. EXT."})
"""Status records a balance prints while it calibrates (live autoprint on a Cubis prints
``Stat     Cal.Int.`` during an internal adjustment)."""
_ERROR_WORDS = frozenset({"APP. ERR", "DIS. ERR", "PRT. ERR", "ERR"})


def _word_line(line: bytes) -> Reading | None:
    """A special, status or error line, whatever its padding; ``None`` if it is not one.

    These carry no number, so their length does not need to be checked to trust them.
    """
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        return None
    candidates = [("", text.strip())]
    if len(text) == BODY_LEN + IDENT_LEN:  # a 22-character line: header, then the word
        candidates.append((text[:IDENT_LEN].strip(), text[IDENT_LEN:].strip()))
    for header, text_word in candidates:
        ident, word = header, text_word
        if word.startswith("Stat ") and not ident:
            ident, word = "Stat", word[4:].strip()
        reading = _word_reading(ident, word)
        if reading is not None:
            return reading
    return None


def _word_reading(ident: str, word: str) -> Reading | None:
    if word in _SPECIALS:
        over, under = _SPECIALS[word]
        # "C": an adjustment is running -- no value, but nothing is wrong.
        return Reading(
            math.nan, "", False, overload=over, underload=under, ident=ident, busy=word == "C"
        )
    if " ".join(word.upper().split()) in _STATUS_WORDS:
        return Reading(math.nan, "", False, ident=ident, busy=True, status_text=word)
    error = _ERROR.match(word)
    if error:
        return Reading(math.nan, "", False, error_code=int(error.group(1)), ident=ident)
    if word.upper() in _ERROR_WORDS:
        return Reading(math.nan, "", False, ident=ident, status_text=word)
    return None


def parse_line(line: bytes) -> Reading:
    """Decode one weight, special, status or error line.

    Weight lines are 16 or 22 bytes including CR LF. Special (``High``, ``Low``...),
    calibration status (``Stat     Cal.Int.``) and error lines (``Err 54``, ``APP. ERR``)
    are recognised by their word, with or without the ``Stat`` header.

    Raises:
        SbiParseError: the bytes are not a well-formed SBI output line.
    """
    if line.endswith(CRLF):
        special = _word_line(line)
        if special is not None:
            return special
    ident, body = _split(line)
    sign = body[0]
    if sign not in "+- ":
        raise SbiParseError(f"SBI sign position holds {sign!r}: {line!r}")
    # Square brackets mark non-verified digits; they are not part of the number.
    digits = body[1:11].replace("[", "").replace("]", "").strip()
    if not _NUMBER.match(digits):
        raise SbiParseError(f"SBI value field {body[2:10]!r} is not a number: {line!r}")
    value = float(digits)
    if sign == "-":
        value = -value
    unit = body[11:14].strip()
    if any(c.isdigit() for c in unit):
        # Not a unit: e.g. a Cubis identity line ("SerNo.    0031801165") is no reading.
        raise SbiParseError(f"SBI unit field {body[11:14]!r} holds digits: {line!r}")
    if unit and body[11] == " ":  # the symbol is left aligned in positions 12-14
        raise SbiParseError(f"SBI unit field {body[11:14]!r} is misaligned: {line!r}")
    return Reading(value, unit, stable=bool(unit), ident=ident)


_TEXT_LABEL = re.compile(r"^[A-Za-z][A-Za-z.]*[.:]\s*$")


def parse_text(line: bytes) -> str:
    """Decode an information reply line (``ESC x1_`` model etc.) to its value.

    A Cubis prints some as 22-character lines with a 6-character label and the value
    right aligned (``SerNo.    0031801165``, ``BAC:        00-39-21``); the label is
    dropped. A plain line (``WZA8202-N``) is returned stripped.
    """
    if not line.endswith(CRLF):
        raise SbiParseError(f"SBI line must end with CR LF: {line!r}")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError as exc:
        raise SbiParseError(f"non-ASCII byte in SBI text line {line!r}") from exc
    if len(text) == BODY_LEN + IDENT_LEN and _TEXT_LABEL.match(text[:IDENT_LEN]):
        return text[IDENT_LEN:].strip()
    return text.strip()
