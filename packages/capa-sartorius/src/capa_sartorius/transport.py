"""The serial link to one balance: request / response exchanges under a lock (pyserial).

Replies are reassembled by the protocol's own framing (SBI: CR LF; xBPI: the length byte),
never by how the bytes happened to arrive. Every exchange records when the request left
and when the reply was complete (``time.monotonic_ns``). Failures raise
:class:`BalanceCommError` with a ``kind`` the adapter turns into an event.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import capa
from capa_sartorius import xbpi
from capa_sartorius.framing import SbiLineSplitter, XbpiSplitter

if TYPE_CHECKING:
    from capa_sartorius.params import BalanceParams

__all__ = ["BalanceCommError", "Exchange", "SerialLink"]

_PARITY = {"none": "N", "odd": "O", "even": "E", "mark": "M", "space": "S"}
_POLL_S = 0.02  # longest a single read blocks, so deadlines are honoured closely


def _io_errors() -> tuple[type[BaseException], ...]:
    """What a failing port raises: pyserial lets ``termios.error`` through on POSIX."""
    import serial

    errors: list[type[BaseException]] = [serial.SerialException, OSError]
    try:
        import termios
    except ImportError:  # pragma: no cover - Windows
        pass
    else:
        errors.append(termios.error)
    return tuple(errors)


class BalanceCommError(capa.CapaError):
    """The balance did not answer properly.

    Attributes:
        kind: what went wrong, one event kind each (``sartorius.<kind>``):

            - ``no_reply``: nothing arrived within ``timeout_s``;
            - ``garbage``: bytes arrived that are no valid line / frame (or only part of one);
            - ``bad_checksum``: a well-formed xBPI frame whose checksum is wrong;
            - ``device_error``: the balance answered with an xBPI error code;
            - ``port_lost_idle``: the port was found dead at the start of an exchange
              (it failed while the driver was idle between requests);
            - ``port_lost_mid_exchange``: the port failed after the request went out;
            - ``open_failed``: reopening the port failed;
            - ``port_down``: the port is closed and the next reopen attempt is not due
              yet (back-off); no event, the tick is recorded as ``comm_error``.
        raw: the offending bytes, if any.
    """

    def __init__(self, kind: str, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.kind = kind
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Exchange:
    """One reply and its timing (``time.monotonic_ns`` readings)."""

    t_request_ns: int
    t_receive_ns: int
    raw: bytes


class SerialLink:
    """A pyserial connection to one balance.

    Args:
        params: the device params (serial settings, timeout, protocol).
        path: returns the device path to open; called on every (re)connect so that a
            simulator that moved to a new pty is found again.
    """

    def __init__(self, params: BalanceParams, path: Callable[[], str]) -> None:
        self.params = params
        self._path = path
        self._serial: Any = None
        self.lock = threading.RLock()
        """Held for each whole request / response exchange."""
        self._lines = SbiLineSplitter()
        self._queued: deque[tuple[int, bytes]] = deque()
        self._frames = XbpiSplitter(replies=True)
        self._stale = bytearray()

    @property
    def is_open(self) -> bool:
        """Whether the port is open."""
        return self._serial is not None

    @property
    def port_name(self) -> str:
        """The device path currently (or last) used."""
        return self._path()

    def open(self) -> None:
        """Open the port (idempotent). Raises :class:`BalanceCommError` ``open_failed``."""
        import serial

        with self.lock:
            if self._serial is not None:
                return
            name = self._path()
            parity = _PARITY[self.params.parity]
            try:
                self._serial = self._open_serial(serial, name, parity)
            except Exception as exc:  # pyserial also lets termios.error through on POSIX
                if parity == "N" or "Invalid argument" not in str(exc):
                    raise BalanceCommError(
                        "open_failed", f"cannot open serial port {name!r}: {exc}"
                    ) from exc
                # Linux pseudo-terminals refuse (EINVAL) to re-apply a parity setting a
                # previous client left; configuring once without parity clears that state.
                # A real UART that rejects the settings fails the retry and is reported.
                try:
                    self._open_serial(serial, name, "N").close()
                    self._serial = self._open_serial(serial, name, parity)
                except Exception:
                    raise BalanceCommError(
                        "open_failed", f"cannot open serial port {name!r}: {exc}"
                    ) from exc
            self._reset_buffers()

    def _open_serial(self, serial: Any, name: str, parity: str) -> Any:
        return serial.Serial(
            port=name,
            baudrate=self.params.baudrate,
            bytesize=self.params.data_bits,
            parity=parity,
            stopbits=self.params.stopbits,
            timeout=min(_POLL_S, self.params.timeout_s),
            write_timeout=self.params.timeout_s,
            # An advisory lock (POSIX): a second program opening the same port fails
            # instead of stealing replies.
            exclusive=True,
        )

    def close(self) -> None:
        """Close the port (idempotent, never raises)."""
        with self.lock:
            ser, self._serial = self._serial, None
            if ser is not None:
                with contextlib.suppress(Exception):  # a dead port cannot be closed more
                    ser.close()
            self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._lines.clear()
        self._queued.clear()
        self._frames.clear()

    # ------------------------------------------------------------------ raw I/O
    def _port(self) -> Any:
        if self._serial is None:
            raise BalanceCommError("disconnected", "serial port is not open")
        return self._serial

    def _io_failed(self, exc: BaseException, *, idle: bool) -> BalanceCommError:
        name = self._path()
        self.close()
        if idle:
            return BalanceCommError(
                "port_lost_idle",
                f"serial port {name!r} was lost while idle (found dead before the request): {exc}",
            )
        return BalanceCommError(
            "port_lost_mid_exchange",
            f"serial port {name!r} was lost while waiting for the reply: {exc}",
        )

    def _write(self, data: bytes) -> int:
        ser = self._port()
        try:
            t = time.monotonic_ns()
            ser.write(data)
        except _io_errors() as exc:
            # The write itself failed: the port was dead before anything was in flight,
            # so it went away while the driver was idle between requests.
            raise self._io_failed(exc, idle=True) from exc
        try:
            ser.flush()
        except _io_errors() as exc:
            # The request was handed over; the device may already be answering (or gone).
            raise self._io_failed(exc, idle=False) from exc
        return t

    def _read_some(self, *, idle: bool = False) -> bytes:
        """Whatever arrives within one poll interval (possibly nothing)."""
        ser = self._port()
        try:
            waiting = ser.in_waiting
            return bytes(ser.read(max(1, waiting)))
        except _io_errors() as exc:
            raise self._io_failed(exc, idle=idle) from exc

    def _read_available(self) -> bytes:
        """The bytes already received, without waiting (autoprint: nothing in flight)."""
        ser = self._port()
        try:
            waiting = ser.in_waiting
            return bytes(ser.read(waiting)) if waiting else b""
        except _io_errors() as exc:
            raise self._io_failed(exc, idle=True) from exc

    def _discard_input(self) -> None:
        """Set aside stale bytes (a late reply to an earlier request) before a new request.

        They are kept for :meth:`take_stale` so the adapter can report the late reply.
        pyserial lets ``termios.error`` escape from ``reset_input_buffer`` on a dead pty;
        it is caught here like any port failure (the port died while idle).
        """
        ser = self._port()
        try:
            waiting = ser.in_waiting
            late = bytes(ser.read(waiting)) if waiting else b""
            ser.reset_input_buffer()
        except _io_errors() as exc:
            raise self._io_failed(exc, idle=True) from exc
        self._stale += b"".join(line for _, line in self._queued)
        self._stale += self._lines.pending + self._frames.pending + late
        self._reset_buffers()

    def take_stale(self) -> bytes:
        """Bytes found waiting before the last request (a late reply), then forgotten."""
        with self.lock:
            stale, self._stale = bytes(self._stale), bytearray()
            return stale

    # ------------------------------------------------------------------ SBI
    def _next_line(self, deadline: float, *, idle: bool = False) -> tuple[int, bytes]:
        while not self._queued:
            if time.monotonic() >= deadline:
                pending = self._lines.pending
                if pending:
                    raise BalanceCommError(
                        "garbage",
                        f"only part of an SBI line within {self.params.timeout_s:g} s: {pending!r}",
                        pending,
                    )
                raise BalanceCommError("no_reply", f"no reply within {self.params.timeout_s:g} s")
            chunk = self._read_some(idle=idle)
            if chunk:
                t = time.monotonic_ns()
                self._queued.extend((t, line) for line in self._lines.feed(chunk))
        return self._queued.popleft()

    def sbi_send(self, command: bytes) -> int:
        """Send a command that has no reply; returns the send time."""
        with self.lock:
            return self._write(command)

    def sbi_request(
        self, command: bytes, *, skip: Callable[[bytes], bool] | None = None
    ) -> Exchange:
        """Send ``command`` and return the next complete line.

        Stale input is discarded first. Lines for which ``skip`` returns true (weight lines
        an autoprinting balance sends while the host waits for an information reply) are
        passed over until the timeout.
        """
        with self.lock:
            self._discard_input()
            t_req = self._write(command)
            deadline = time.monotonic() + self.params.timeout_s
            while True:
                t_recv, line = self._next_line(deadline)
                if skip is None or not skip(line):
                    return Exchange(t_req, t_recv, line)

    def sbi_drain(self, *, wait: bool) -> list[Exchange]:
        """Lines the balance sent unprompted (autoprint).

        Returns every complete line received so far; with ``wait`` and none buffered,
        waits up to ``timeout_s`` for one (timeout raises).
        """
        with self.lock:
            t_start = time.monotonic_ns()
            # Only what has already arrived: a fast stream must not keep the tick going.
            chunk = self._read_available()
            if chunk:
                t = time.monotonic_ns()
                self._queued.extend((t, line) for line in self._lines.feed(chunk))
            if not self._queued and wait:
                self._queued.append(
                    self._next_line(time.monotonic() + self.params.timeout_s, idle=True)
                )
            out = [Exchange(t_start, t, line) for t, line in self._queued]
            self._queued.clear()
            return out

    # ------------------------------------------------------------------ xBPI
    def xbpi_request(self, opcode: int, args: bytes = b"") -> xbpi.Reply:
        """Send an xBPI request and return the balance's reply frame (errors included).

        Raises :class:`BalanceCommError` on no reply, garbage or a bad checksum.
        """
        reply, _ = self.xbpi_exchange(opcode, args)
        return reply

    def xbpi_exchange(self, opcode: int, args: bytes = b"") -> tuple[xbpi.Reply, Exchange]:
        """Like :meth:`xbpi_request`, also returning the raw frame and its timing.

        xBPI replies do not name the request they answer, so stale input is set aside
        before the request goes out and the first frame after it is the reply.
        """
        frame = xbpi.encode_request(opcode, args, dst=self.params.sbn)
        with self.lock:
            self._discard_input()
            t_req = self._write(frame)
            deadline = time.monotonic() + self.params.timeout_s
            while True:
                chunk = self._read_some()
                frames = self._frames.feed(chunk) if chunk else []
                if frames:
                    raw = frames[0]
                    t_recv = time.monotonic_ns()
                    # One request, one reply: anything after it is reported, not dropped.
                    self._stale += b"".join(frames[1:])
                    try:
                        reply = xbpi.decode_reply(raw)
                    except xbpi.XbpiError as exc:
                        raise BalanceCommError(exc.kind, str(exc), raw) from exc
                    return reply, Exchange(t_req, t_recv, raw)
                if time.monotonic() >= deadline:
                    got = self._frames.pending
                    if got or self._frames.dropped:
                        raise BalanceCommError(
                            "garbage",
                            f"no valid xBPI frame within {self.params.timeout_s:g} s "
                            f"({self._frames.dropped} byte(s) discarded"
                            + (f", incomplete {got.hex(' ')}" if got else "")
                            + ")",
                            got,
                        )
                    raise BalanceCommError(
                        "no_reply",
                        f"no reply to xBPI opcode 0x{opcode:02x} within "
                        f"{self.params.timeout_s:g} s",
                    )
