"""One serial connection per port, shared by every controller on that RS-485 bus.

Several adapters whose ``port`` is the same (one resource id) get the same
:class:`SharedPort`. A lock is held for each request/response exchange so frames from
two controllers never interleave on the wire. The connection opens lazily and
:meth:`SharedPort.reset` drops it; the next exchange reopens it (resolving the path
again, so a restarted simulator's new terminal is found).

pyserial and pymodbus are imported here, never by :mod:`capa_watlow.plugin`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from capa_watlow import stdbus
from capa_watlow.errors import CommError, CommGarbled, CommTimeout, PortConflict

__all__ = ["SharedPort", "acquire_port", "release_port"]

_NULL_HANDLER = logging.NullHandler()


class SharedPort:
    """A serial port carrying one protocol at one baud rate.

    Args:
        key: resource id the port is shared under.
        resolve: returns the device path to open (called at every (re)connect).
        protocol: ``stdbus`` or ``modbus_rtu``.
        baudrate: line speed.
        timeout_s: reply timeout of the Modbus client (Standard Bus takes one per exchange).
    """

    def __init__(
        self,
        key: str,
        resolve: Callable[[], str],
        protocol: str,
        baudrate: int,
        timeout_s: float = 0.5,
    ) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self.protocol = protocol
        self.baudrate = baudrate
        self.lock = threading.RLock()
        self._resolve = resolve
        self._serial: Any = None
        self._modbus: Any = None
        self._drain = False
        self.opens = 0

    # ---------------------------------------------------------------- connection
    def ensure_open(self) -> None:
        """Open the connection if it is not open; raises :class:`CommError` on failure."""
        with self.lock:
            if self.protocol == "stdbus":
                self._stdbus_serial()
            else:
                self.modbus_client()

    def _stdbus_serial(self) -> Any:
        if self._serial is None:
            path = self._resolve()
            try:
                self._serial = serial.Serial(path, self.baudrate, timeout=0.1)
            except (serial.SerialException, OSError) as exc:
                raise CommError(f"{self.key}: cannot open {path}: {exc}") from None
            self.opens += 1
            self._drain_stale(self._serial)
        return self._serial

    def modbus_client(self) -> Any:
        """The (connected) pymodbus serial client of this port."""
        from pymodbus.client import ModbusSerialClient

        # pymodbus logs every timeout at ERROR; with no handler configured Python would
        # print them on stderr next to the comm_error events we emit. A NullHandler keeps
        # them out of stderr yet still lets an application that configures logging see them.
        logging.getLogger("pymodbus").addHandler(_NULL_HANDLER)
        if self._modbus is None:
            path = self._resolve()
            # retries=0: the adapter owns the retry policy and counts failures itself.
            client = ModbusSerialClient(
                path, baudrate=self.baudrate, timeout=self.timeout_s, retries=0
            )
            if not client.connect():
                raise CommError(f"{self.key}: cannot open {path}")
            self._modbus = client
            self.opens += 1
            self._drain_stale(client.socket)
        return self._modbus

    def _drain_stale(self, port: Any) -> None:
        # After a failure a controller may still answer the abandoned request. Without
        # this, that late reply would be taken for the answer to the next request (Modbus
        # RTU has no transaction id), so listen for one timeout and discard what comes.
        if not self._drain or port is None:
            return
        self._drain = False
        deadline = time.monotonic() + self.timeout_s
        saved = port.timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                port.timeout = remaining
                port.read(4096)
            port.timeout = saved
        except (serial.SerialException, OSError):
            pass  # the next exchange reports a dead port properly

    def reset(self) -> None:
        """Drop the connection; the next exchange reopens it (after draining late replies)."""
        with self.lock:
            self._drain = True
            if self._serial is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    self._serial.close()
                self._serial = None
            if self._modbus is not None:
                self._modbus.close()
                self._modbus = None

    def close(self) -> None:
        """Close the connection for good (last user gone)."""
        self.reset()
        self._drain = False

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
            port = self._stdbus_serial()
            assembler = stdbus.FrameAssembler()
            try:
                port.reset_input_buffer()  # a late reply to a previous request
                port.write(request)
                deadline = time.monotonic() + timeout_s
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CommTimeout(f"{self.key}: no reply within {timeout_s:g} s")
                    port.timeout = remaining
                    chunk = port.read(assembler.needed())
                    if not chunk:
                        raise CommTimeout(f"{self.key}: no reply within {timeout_s:g} s")
                    for item in assembler.feed(chunk):
                        if isinstance(item, stdbus.FrameError):
                            raise CommGarbled(f"{self.key}: {item}")
                        if accept(item):
                            return item
            except (serial.SerialException, OSError) as exc:
                self.reset()
                raise CommError(f"{self.key}: port lost: {exc}") from None


# ---------------------------------------------------------------- sharing
_lock = threading.Lock()
_ports: dict[str, tuple[SharedPort, int]] = {}


def acquire_port(
    key: str,
    resolve: Callable[[], str],
    protocol: str,
    baudrate: int,
    timeout_s: float = 0.5,
) -> SharedPort:
    """The shared port for resource ``key`` (created on first use, reference counted).

    Raises:
        PortConflict: another device on this port uses another protocol or baud rate.
    """
    with _lock:
        port, refs = _ports.get(key, (None, 0))
        if port is None:
            port = SharedPort(key, resolve, protocol, baudrate, timeout_s)
        elif (port.protocol, port.baudrate) != (protocol, baudrate):
            raise PortConflict(
                f"{key}: already used with protocol {port.protocol} at {port.baudrate} baud; "
                f"a device asked for {protocol} at {baudrate} baud"
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
