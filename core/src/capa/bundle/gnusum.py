r"""Reading a checksum list the way GNU ``sha256sum -c`` (coreutils 9) reads it.

capa's verifier must never call a bundle intact that ``cd bundle && sha256sum -c
manifest.sha256`` would reject, so it parses the list with the same rules, written here
from coreutils' documented and observed behaviour (a property test compares the two):

- Lines end at ``\n`` only (no other whitespace, e.g. a vertical tab, ends a line); one
  trailing ``\r`` is dropped; empty lines and lines whose first byte is ``#`` are skipped.
- Leading spaces and tabs are skipped. A ``\`` then marks an escaped file name, in which
  only ``\\``, ``\n`` and ``\r`` are allowed (and no NUL).
- ``SHA256 (name) = <hex>`` (BSD tag, optional space before ``(``; the name ends at the
  last ``)``) or ``<64 hex><space|tab><' '|'*'><name>``, or the "reversed BSD" form
  ``<hex> <name>``, which cannot be mixed with the standard form in one list.
- The hex digest must be exactly 64 hex digits (any case). An unescaped name ends at its
  first NUL byte, as a C string does. Every other byte of a name is significant.

``sha256sum -c --strict`` fails on any malformed line; so does capa. The verdict on the
files themselves (existence, regular file, inside the bundle) is made by
:func:`capa.bundle.integrity.verify_bundle`.
"""

from __future__ import annotations

import os

__all__ = ["parse_gnu_checksums"]

_TAG = b"SHA256"
_HEX_LEN = 64
_HEX = frozenset(b"0123456789abcdefABCDEF")
_WHITE = (0x20, 0x09)  # GNU's ISWHITE: space and tab only


def _unescape(name: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == 0x5C:  # backslash
            if i == len(name) - 1:
                return None
            i += 1
            esc = {0x6E: 0x0A, 0x72: 0x0D, 0x5C: 0x5C}.get(name[i])
            if esc is None:
                return None
            out.append(esc)
        elif ch == 0:
            return None
        else:
            out.append(ch)
        i += 1
    return bytes(out)


def _c_string(data: bytes) -> bytes:
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


def _is_hex(digest: bytes) -> bool:
    return len(digest) == _HEX_LEN and all(c in _HEX for c in digest)


class _Parser:
    def __init__(self) -> None:
        self.bsd_reversed: bool | None = None  # undecided until a line settles it

    def split(self, s: bytes) -> tuple[bytes, bytes] | None:
        """``(hex, raw name)`` of one line, or ``None`` if GNU calls it malformed."""
        i = 0
        while i < len(s) and s[i] in _WHITE:
            i += 1
        escaped = i < len(s) and s[i] == 0x5C
        if escaped:
            i += 1
        if s.startswith(_TAG, i):
            return self._bsd(s, i + len(_TAG), escaped)
        if len(s) - i < _HEX_LEN + 2 + (1 if s[i : i + 1] == b"\\" else 0):
            return None  # too short for digest, separator and a one-byte name
        digest = _c_string(s[i : i + _HEX_LEN])
        i += _HEX_LEN
        if i >= len(s) or s[i] not in _WHITE:
            return None
        i += 1
        if len(s) - i == 1 or s[i] not in (0x20, 0x2A):
            if self.bsd_reversed is False:
                return None  # mixing formats is refused (renamed-file attacks)
            self.bsd_reversed = True
        elif self.bsd_reversed is not True:
            self.bsd_reversed = False
            i += 1  # the ' ' (text) or '*' (binary) marker
        return self._name(digest, s[i:], escaped)

    def _bsd(self, s: bytes, i: int, escaped: bool) -> tuple[bytes, bytes] | None:
        if i < len(s) and s[i] == 0x20:
            i += 1
        if i >= len(s) or s[i] != 0x28:  # '('
            return None
        rest = s[i + 1 :]
        close = rest.rfind(b")")
        if close < 0:
            return None
        j = close + 1
        while j < len(rest) and rest[j] in _WHITE:
            j += 1
        if j >= len(rest) or rest[j] != 0x3D:  # '='
            return None
        j += 1
        while j < len(rest) and rest[j] in _WHITE:
            j += 1
        return self._name(_c_string(rest[j:]), rest[:close], escaped)

    @staticmethod
    def _name(digest: bytes, name: bytes, escaped: bool) -> tuple[bytes, bytes] | None:
        if not _is_hex(digest):
            return None
        if escaped:
            unescaped = _unescape(name)
            if unescaped is None:
                return None
            name = unescaped
        return digest, _c_string(name)


def parse_gnu_checksums(data: bytes) -> tuple[list[tuple[str, str]], list[int]]:
    """``(name, lowercase hex)`` per well-formed line (file order) and malformed line numbers.

    Names are decoded with :func:`os.fsdecode`, so any byte sequence round-trips to the
    file system path ``sha256sum`` would open.
    """
    parser = _Parser()
    entries: list[tuple[str, str]] = []
    bad: list[int] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the text after the final newline is not a line
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if raw.startswith(b"#") or not line:
            continue  # comments and empty lines are skipped
        parsed = parser.split(line)
        if parsed is None:
            bad.append(number)
            continue
        digest, name = parsed
        entries.append((os.fsdecode(name), digest.decode("ascii").lower()))
    return entries, bad
