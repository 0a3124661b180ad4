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
        kind: ``timeout`` (no complete reply in time), ``garbled`` (a reply that does not
            decode), ``disconnected`` (the port failed or vanished) or ``open_failed``.
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
        self._frames = XbpiSplitter()

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

    def _io_failed(self, exc: BaseException) -> BalanceCommError:
        name = self._path()
        self.close()
        return BalanceCommError("disconnected", f"serial port {name!r} failed: {exc}")

    def _write(self, data: bytes) -> int:
        ser = self._port()
        try:
            t = time.monotonic_ns()
            ser.write(data)
            ser.flush()
        except _io_errors() as exc:
            raise self._io_failed(exc) from exc
        return t

    def _read_some(self) -> bytes:
        """Whatever arrives within one poll interval (possibly nothing)."""
        ser = self._port()
        try:
            waiting = ser.in_waiting
            return bytes(ser.read(max(1, waiting)))
        except _io_errors() as exc:
            raise self._io_failed(exc) from exc

    def _read_available(self) -> bytes:
        """The bytes already received, without waiting."""
        ser = self._port()
        try:
            waiting = ser.in_waiting
            return bytes(ser.read(waiting)) if waiting else b""
        except _io_errors() as exc:
            raise self._io_failed(exc) from exc

    def _discard_input(self) -> None:
        """Drop stale bytes (a late reply to an earlier request) before a new request."""
        ser = self._port()
        try:
            ser.reset_input_buffer()
        except _io_errors() as exc:
            raise self._io_failed(exc) from exc
        self._reset_buffers()

    # ------------------------------------------------------------------ SBI
    def _next_line(self, deadline: float) -> tuple[int, bytes]:
        while not self._queued:
            if time.monotonic() >= deadline:
                pending = self._lines.pending
                raise BalanceCommError(
                    "timeout",
                    f"no complete SBI line within {self.params.timeout_s:g} s"
                    + (f" (got {pending!r})" if pending else ""),
                    pending,
                )
            chunk = self._read_some()
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
                self._queued.append(self._next_line(time.monotonic() + self.params.timeout_s))
            out = [Exchange(t_start, t, line) for t, line in self._queued]
            self._queued.clear()
            return out

    # ------------------------------------------------------------------ xBPI
    def xbpi_request(self, command: int, params: tuple[xbpi.Param, ...] = ()) -> xbpi.Reply:
        """Send an xBPI request and return the decoded reply to that command.

        Replies to other commands (late answers to an earlier request) are skipped.
        Raises :class:`BalanceCommError` on timeout or a telegram that does not decode.
        """
        reply, _ = self.xbpi_exchange(command, params)
        return reply

    def xbpi_exchange(
        self, command: int, params: tuple[xbpi.Param, ...] = ()
    ) -> tuple[xbpi.Reply, Exchange]:
        """Like :meth:`xbpi_request`, also returning the raw telegram and its timing."""
        frame = xbpi.encode_request(command, params, address=self.params.address)
        with self.lock:
            self._discard_input()
            t_req = self._write(frame)
            deadline = time.monotonic() + self.params.timeout_s
            queued: deque[bytes] = deque()
            while True:
                while queued:
                    raw = queued.popleft()
                    try:
                        reply = xbpi.decode_reply(raw)
                    except xbpi.XbpiError as exc:
                        raise BalanceCommError("garbled", f"bad xBPI reply: {exc}", raw) from exc
                    if reply.command == command and reply.address == self.params.address:
                        return reply, Exchange(t_req, time.monotonic_ns(), raw)
                if time.monotonic() >= deadline:
                    raise BalanceCommError(
                        "timeout",
                        f"no xBPI reply to command 0x{command:02x} within "
                        f"{self.params.timeout_s:g} s",
                    )
                chunk = self._read_some()
                if chunk:
                    queued.extend(self._frames.feed(chunk))
