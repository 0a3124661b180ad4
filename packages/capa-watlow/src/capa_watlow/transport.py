"""One serial connection per port, shared by every controller on that RS-485 bus.

Several adapters whose ``port`` is the same (one resource id) get the same
:class:`SharedPort`. A lock is held for each request/response exchange so frames from
two controllers never interleave on the wire. The connection opens lazily and
:meth:`SharedPort.reset` drops it; the next exchange reopens it (resolving the path
again, so a restarted simulator's new terminal is found).

Both protocols run on pyserial with this package's own codecs, so every failure is
classified here, once: no reply (:class:`CommTimeout`), bytes that are no reply
(:class:`CommGarbled`), a reply with a bad checksum (:class:`CommChecksum`), the port
failing under an open connection (:class:`PortLost`) -- including a port that died while
idle, which pyserial reports as ``termios.error`` from ``reset_input_buffer()``, an
exception that is neither ``OSError`` nor ``SerialException`` -- and a port that cannot
be opened (:class:`PortUnavailable`). pyserial is imported here, never by
:mod:`capa_watlow.plugin`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from capa_watlow import modbus, stdbus
from capa_watlow.errors import (
    CommChecksum,
    CommError,
    CommGarbled,
    CommTimeout,
    PortConflict,
    PortLost,
    PortUnavailable,
)

__all__ = ["PORT_ERRORS", "SharedPort", "acquire_port", "release_port"]


def _port_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (serial.SerialException, OSError)
    try:
        import termios
    except ImportError:  # Windows: pyserial raises SerialException / OSError only
        return errors
    return (*errors, termios.error)


PORT_ERRORS = _port_errors()
"""Exceptions meaning the serial port itself failed (termios.error included on POSIX)."""

_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD}


class SharedPort:
    """A serial port carrying one protocol at one baud rate.

    Args:
        key: resource id the port is shared under.
        resolve: returns the device path to open (called at every (re)connect).
        protocol: ``stdbus`` or ``modbus_rtu``.
        baudrate: line speed.
        timeout_s: how long to listen for late replies when the port re-opens.
        parity: ``none``, ``even`` or ``odd`` (8 data bits, 1 stop bit).
    """

    def __init__(
        self,
        key: str,
        resolve: Callable[[], str],
        protocol: str,
        baudrate: int,
        timeout_s: float = 0.5,
        *,
        parity: str = "none",
    ) -> None:
        self.key = key
        self.parity = parity
        self.timeout_s = timeout_s
        self.protocol = protocol
        self.baudrate = baudrate
        self.lock = threading.RLock()
        self._resolve = resolve
        self._serial: Any = None
        self._drain = False
        self.opens = 0
        self._last_io = 0.0  # monotonic time of the last byte on the line, as far as we know
        self.late_bytes = 0
        """Bytes discarded because they arrived after their request had timed out."""

    # ---------------------------------------------------------------- connection
    def ensure_open(self) -> None:
        """Open the connection if it is not open; raises :class:`CommError` on failure."""
        with self.lock:
            self._open()

    def _open(self) -> Any:
        if self._serial is None:
            path = self._resolve()
            try:
                self._serial = serial.Serial(
                    path, self.baudrate, parity=_PARITY[self.parity], timeout=0.1
                )
            except PORT_ERRORS as exc:
                raise PortUnavailable(f"{self.key}: cannot open {path}: {exc}") from None
            self.opens += 1
            self._drain_stale(self._serial)
        return self._serial

    def _drain_stale(self, port: Any) -> None:
        # After a failure a controller may still answer the abandoned request. Without
        # this, that late reply would be taken for the answer to the next request (Modbus
        # RTU has no transaction id), so listen for one timeout and discard what comes.
        if not self._drain:
            return
        self._drain = False
        deadline = time.monotonic() + self.timeout_s
        saved = port.timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                port.timeout = remaining
                self.late_bytes += len(port.read(4096))
            port.timeout = saved
        except PORT_ERRORS as exc:
            # The port died while draining: drop it, the caller's exchange reports it.
            self._close_serial()
            raise PortLost(f"{self.key}: port lost: {exc}") from None

    def _close_serial(self) -> None:
        if self._serial is not None:
            # A dead port may fail to close as well; it is being dropped either way.
            with contextlib.suppress(*PORT_ERRORS):
                self._serial.close()
            self._serial = None

    def reset(self) -> None:
        """Drop the connection; the next exchange reopens it (after draining late replies)."""
        with self.lock:
            self._drain = True
            self._close_serial()

    def close(self) -> None:
        """Close the connection for good (last user gone)."""
        self.reset()
        self._drain = False

    def take_late_bytes(self) -> int:
        """Late-reply bytes discarded since the last call (and reset the count)."""
        with self.lock:
            count, self.late_bytes = self.late_bytes, 0
            return count

    def _send(self, port: Any, request: bytes) -> None:
        # Whatever is waiting now answers nothing we are waiting for: a reply that came
        # after its request had timed out. Count it, then drop it.
        waiting = port.in_waiting
        if waiting:
            self.late_bytes += waiting
        port.reset_input_buffer()
        port.write(request)

    # ---------------------------------------------------------------- Standard Bus
    def stdbus_exchange(
        self,
        request: bytes,
        timeout_s: float,
        accept: Callable[[stdbus.Frame], bool],
    ) -> stdbus.Frame:
        """Send ``request``; return the first reply frame ``accept`` takes.

        Bytes are read in the amounts the frame header says are still missing, so a
        reply split across reads (or glued to a late one) is reassembled correctly;
        frames ``accept`` rejects (a late reply to an earlier request) are skipped.
        """
        with self.lock:
            port = self._open()
            assembler = stdbus.FrameAssembler()
            received = 0
            try:
                self._send(port, request)
                deadline = time.monotonic() + timeout_s
                while True:
                    remaining = deadline - time.monotonic()
                    chunk = b""
                    if remaining > 0:
                        port.timeout = remaining
                        chunk = port.read(assembler.needed())
                    if not chunk:
                        raise self._silence(received, timeout_s)
                    received += len(chunk)
                    for item in assembler.feed(chunk):
                        if isinstance(item, stdbus.FrameChecksumError):
                            raise CommChecksum(f"{self.key}: {item}")
                        if isinstance(item, stdbus.FrameError):
                            raise CommGarbled(f"{self.key}: {item}")
                        if accept(item):
                            return item
                        # A late reply to an earlier request: not ours, not garbage.
                        skipped = len(stdbus.encode_frame(item))
                        self.late_bytes += skipped
                        received -= skipped
            except PORT_ERRORS as exc:
                self.reset()
                raise PortLost(f"{self.key}: port lost: {exc}") from None

    def _silence(self, received: int, timeout_s: float) -> CommError:
        if received:
            return CommGarbled(
                f"{self.key}: {received} bytes but no valid reply within {timeout_s:g} s"
            )
        return CommTimeout(f"{self.key}: no reply within {timeout_s:g} s")

    # ---------------------------------------------------------------- Modbus RTU
    @property
    def frame_gap_s(self) -> float:
        """Modbus RTU inter-frame silence: 3.5 characters (11 bits), 1.75 ms above 19200 baud.

        A slave finds the end of a frame by this silence (Modbus over serial line
        v1.02, 2.5.1.1), so a request must not follow the previous reply sooner.
        """
        return 3.5 * 11 / self.baudrate if self.baudrate <= 19200 else 0.00175

    def modbus_exchange(self, request: bytes, timeout_s: float) -> modbus.Response:
        """Send a Modbus RTU ``request``; return its decoded response.

        Raises :class:`CommTimeout` when nothing comes, :class:`CommChecksum` for a
        complete reply with a wrong CRC, :class:`CommGarbled` for bytes that are no
        reply to this request (and for a reply cut short), :class:`PortLost`.
        """
        unit, function = request[0], request[1]
        with self.lock:
            port = self._open()
            assembler = modbus.ResponseAssembler(unit, function)
            try:
                quiet = time.monotonic() - self._last_io
                if quiet < self.frame_gap_s:
                    time.sleep(self.frame_gap_s - quiet)
                self._send(port, request)
                deadline = time.monotonic() + timeout_s
                while True:
                    remaining = deadline - time.monotonic()
                    chunk = b""
                    if remaining > 0:
                        port.timeout = remaining
                        chunk = port.read(assembler.needed())
                    if not chunk:
                        raise self._silence(assembler.received, timeout_s)
                    self._last_io = time.monotonic()
                    try:
                        frame = assembler.feed(chunk)
                        if frame is not None:
                            return modbus.decode_response(frame)
                    except modbus.ModbusChecksumError as exc:
                        raise CommChecksum(f"{self.key}: unit {unit}: {exc}") from None
                    except modbus.ModbusFrameError as exc:
                        raise CommGarbled(f"{self.key}: unit {unit}: {exc}") from None
            except PORT_ERRORS as exc:
                self.reset()
                raise PortLost(f"{self.key}: port lost: {exc}") from None


# ---------------------------------------------------------------- sharing
_lock = threading.Lock()
_ports: dict[str, tuple[SharedPort, int]] = {}


def acquire_port(
    key: str,
    resolve: Callable[[], str],
    protocol: str,
    baudrate: int,
    timeout_s: float = 0.5,
    *,
    parity: str = "none",
) -> SharedPort:
    """The shared port for resource ``key`` (created on first use, reference counted).

    Raises:
        PortConflict: another device on this port uses another protocol, baud rate or
            parity.
    """
    with _lock:
        port, refs = _ports.get(key, (None, 0))
        if port is None:
            port = SharedPort(key, resolve, protocol, baudrate, timeout_s, parity=parity)
        elif (port.protocol, port.baudrate, port.parity) != (protocol, baudrate, parity):
            raise PortConflict(
                f"{key}: already used with protocol {port.protocol} at {port.baudrate} baud, "
                f"parity {port.parity}; a device asked for {protocol} at {baudrate} baud, "
                f"parity {parity}"
            )
        _ports[key] = (port, refs + 1)
        return port


def release_port(port: SharedPort) -> None:
    """Drop one reference; the last one closes the connection."""
    with _lock:
        entry = _ports.get(port.key)
        if entry is None or entry[0] is not port:
            return
        if entry[1] <= 1:
            del _ports[port.key]
            port.close()
        else:
            _ports[port.key] = (port, entry[1] - 1)
