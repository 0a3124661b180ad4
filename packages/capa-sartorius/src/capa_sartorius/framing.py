"""Reassemble protocol units from a byte stream that arrives in arbitrary chunks.

A serial read returns whatever the UART happened to hold; a line or frame may be split
across reads or several may arrive in one. These splitters buffer bytes and hand out whole
units by the protocol's own rule: SBI lines end with CR LF, SBI commands are ESC-delimited,
xBPI frames carry their length in the first byte.
"""

from __future__ import annotations

from capa_sartorius import xbpi
from capa_sartorius.sbi import ESC

__all__ = ["SbiCommandSplitter", "SbiLineSplitter", "XbpiSplitter"]

_MAX_LINE = 256  # a longer run without CR LF is garbage; drop it rather than grow forever


class SbiLineSplitter:
    """SBI output lines (balance -> host): complete when CR LF arrives."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every line completed by them, each ending in CR LF."""
        self._buf += data
        lines = []
        while (end := self._buf.find(b"\r\n")) >= 0:
            lines.append(bytes(self._buf[: end + 2]))
            del self._buf[: end + 2]
        if len(self._buf) > _MAX_LINE:
            lines.append(bytes(self._buf))  # surfaced as a garbage line, not silently lost
            self._buf.clear()
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete line."""
        return bytes(self._buf)

    def clear(self) -> None:
        """Forget buffered bytes (after a reconnect)."""
        self._buf.clear()


class SbiCommandSplitter:
    """SBI commands (host -> balance), for the simulator.

    A command starts with ESC. It is complete at LF, when the next ESC arrives, after one
    upper-case letter (format 1: ``ESC P``) or at the underscore that ends format 2
    (``ESC x1_``) -- the CR LF after a command is optional on a real balance.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return complete commands (``ESC`` + body, without CR LF)."""
        out: list[bytes] = []
        for byte in data:
            if byte == ESC:
                if self._buf:
                    out.append(bytes(self._buf))
                self._buf = bytearray([ESC])
                continue
            if not self._buf:
                continue  # CR / LF / noise between commands
            if byte in (0x0D, 0x0A):
                out.append(bytes(self._buf))
                self._buf.clear()
                continue
            self._buf.append(byte)
            body = self._buf[1:]
            format1_done = len(body) == 1 and chr(byte).isupper()
            # The length cap stops a lost terminator from swallowing later commands.
            if format1_done or byte == ord("_") or len(self._buf) > 32:
                out.append(bytes(self._buf))
                self._buf.clear()
        return out


class XbpiSplitter:
    """xBPI frames in either direction: the first byte gives the length.

    A byte that cannot start a frame is dropped (and counted), so the splitter
    resynchronises after garbage; with ``replies=True`` a candidate whose second byte is
    not the reply marker ``0x41`` is dropped too. With ``gap_s``, an incomplete frame
    followed by silence longer than that is dropped, as a receiver's inter-byte timeout
    does: a stray byte that looked like a length must not swallow the next real frame.
    Checksums are checked by the decoder, not here.
    """

    def __init__(self, gap_s: float | None = None, *, replies: bool = False) -> None:
        self._buf = bytearray()
        self._gap_s = gap_s
        self._replies = replies
        self._last = 0.0
        self.dropped = 0
        """Bytes discarded while resynchronising."""

    def feed(self, data: bytes, now: float | None = None) -> list[bytes]:
        """Add bytes received at ``now`` (seconds); return every frame they complete."""
        if self._gap_s is not None and now is not None:
            if self._buf and now - self._last > self._gap_s:
                self.dropped += len(self._buf)
                self._buf.clear()
            self._last = now
        self._buf += data
        frames = []
        while self._buf:
            try:
                size = xbpi.frame_size(self._buf[0])
            except xbpi.XbpiError:
                del self._buf[0]
                self.dropped += 1
                continue
            if self._replies and len(self._buf) >= 2 and self._buf[1] != xbpi.REPLY_MARKER:
                del self._buf[0]
                self.dropped += 1
                continue
            if len(self._buf) < size:
                break
            frames.append(bytes(self._buf[:size]))
            del self._buf[:size]
        return frames

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete frame."""
        return bytes(self._buf)

    def clear(self) -> None:
        """Forget buffered bytes and the dropped count."""
        self._buf.clear()
        self.dropped = 0
