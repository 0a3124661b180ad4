"""Serve the simulated balance on a pseudo-terminal, so a serial driver talks to it unchanged.

:class:`PtySimulator` opens a pty pair (``os.openpty()``, raw mode), keeps the slave end
open (so the master never sees a hang-up while no client is connected) and runs the
protocol responder on a background thread reading the master end. The driver opens the
slave path -- or ``link``, a symlink kept pointing at the current slave, which survives
:meth:`PtySimulator.restart` and injected disconnects the way a ``/dev/serial/by-id`` name
survives unplugging a USB adapter.

Faults are injected into the next replies (or autoprint lines): no reply, garbage (an SBI
line that does not parse; bytes that form no xBPI frame), a bad checksum (xBPI), a late
reply, or a disconnect mid-exchange (the pty is closed instead of replying and, after
``downtime_s``, a new one opened). :meth:`PtySimulator.drop_port` closes the port at once,
while the driver is idle, as unplugging the cable between two requests does.
"""

from __future__ import annotations

import contextlib
import enum
import os
import selectors
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from capa_sartorius.sim.model import BalanceModel
from capa_sartorius.sim.responders import make_responder

__all__ = ["Fault", "PtySimulator"]


class Fault(enum.StrEnum):
    """Injectable faults, each applied to one reply."""

    NO_REPLY = "no_reply"
    GARBAGE = "garbage"
    BAD_CHECKSUM = "bad_checksum"
    LATE = "late"
    DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True)
class _Pending:
    fault: Fault
    delay_s: float


class _Disconnected(Exception):
    """Internal: the pty was closed on purpose; the serve loop opens a new one."""


def garbage(reply: bytes) -> bytes:
    """Replace a reply with bytes its protocol cannot decode."""
    if reply.endswith(b"\r\n") and len(reply) >= 10:
        # SBI: overwrite part of the value field; the line still ends with CR LF.
        return reply[:3] + b"?#*@!" + reply[8:]
    # xBPI: no byte of this is a possible length byte, so no frame can start in it.
    return b"\x00\x02\x01\x00\x02"


def bad_checksum(reply: bytes) -> bytes:
    """An xBPI reply whose checksum byte is wrong (everything else intact)."""
    return reply[:-1] + bytes([reply[-1] ^ 0x5A])


class PtySimulator:
    """A simulated Sartorius balance behind a pseudo-terminal.

    Args:
        model: the balance (a default :class:`BalanceModel` if omitted).
        protocol: ``sbi`` or ``xbpi``.
        autoprint_hz: send weight lines unprompted at this rate (SBI only; 0 = polled).
        link: optional symlink path kept pointing at the current slave device.
        sbn: the balance's own xBPI bus node number (factory setting 0; it also answers
            the factory address 9).
        downtime_s: how long an injected disconnect keeps the port away.
        ident: SBI lines carry the 6-character identification header (22 characters).
    """

    def __init__(
        self,
        model: BalanceModel | None = None,
        *,
        protocol: str = "sbi",
        autoprint_hz: float = 0.0,
        link: str | os.PathLike[str] | None = None,
        sbn: int = 0x00,
        downtime_s: float = 0.2,
        ident: bool = False,
    ) -> None:
        self.model = model or BalanceModel()
        self.protocol = protocol
        self.autoprint_hz = autoprint_hz
        self.link = Path(link) if link is not None else None
        self.sbn = sbn
        self.downtime_s = downtime_s
        self.ident = ident
        make_responder(protocol, self.model, sbn=sbn)  # validate the protocol now
        self._faults: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self._slave_name = ""
        self._wake_r, self._wake_w = -1, -1
        self._drop = threading.Event()
        self.connections = 0
        """How many ptys this simulator has opened (restarts and disconnects add one)."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def path(self) -> str:
        """Where a driver connects: the link if one was given, else the slave device."""
        if self.link is not None:
            return str(self.link)
        return self._slave_name

    @property
    def device(self) -> str:
        """The current slave device (``/dev/pts/N``); changes on restart."""
        return self._slave_name

    @property
    def running(self) -> bool:
        """Whether the serving thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Open the pty and start serving; returns :attr:`path`."""
        if self.running:
            return self.path
        self._stop.clear()
        self._open_pty()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, name=f"sartorius-sim:{self.path}", daemon=True
        )
        self._thread.start()
        return self.path

    def stop(self) -> None:
        """Stop serving and close the pty (a connected driver sees the port vanish)."""
        if self._thread is None:
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._thread = None
        self._close_pty()  # unlinks first: nobody may open a pts number about to be recycled
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r, self._wake_w = -1, -1

    def restart(self) -> str:
        """Stop and start again on a fresh pty (the link, if any, follows)."""
        self.stop()
        return self.start()

    def __enter__(self) -> PtySimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def drop_port(self) -> None:
        """Close the port now, without waiting for a request (the driver is idle).

        A new pty is opened after ``downtime_s`` (the link, if any, follows).
        """
        self._drop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def inject(self, fault: Fault | str, count: int = 1, *, delay_s: float = 0.5) -> None:
        """Apply ``fault`` to the next ``count`` replies (``delay_s`` for ``late``).

        Raises:
            ValueError: ``bad_checksum`` on SBI, whose lines carry no checksum.
        """
        if Fault(fault) is Fault.BAD_CHECKSUM and self.protocol != "xbpi":
            raise ValueError("SBI lines carry no checksum: inject 'garbage' instead")
        with self._lock:
            for _ in range(count):
                self._faults.append(_Pending(Fault(fault), delay_s))

    @property
    def pending_faults(self) -> int:
        """Injected faults not yet applied."""
        with self._lock:
            return len(self._faults)

    # ------------------------------------------------------------------ pty handling
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation
        os.set_blocking(master, False)  # a line nobody reads is lost, as on a real wire
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        self.connections += 1
        if self.link is not None:
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._slave_name)
            tmp.replace(self.link)

    def _close_pty(self) -> None:
        # Remove the way in before the pty goes: once closed, its /dev/pts number can be
        # handed to another process's pty, and a driver reopening a stale name would talk
        # to the wrong device (as when a USB adapter's /dev/serial/by-id link vanishes).
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()
        self._slave_name = ""
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master, self._slave = -1, -1

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve_connection()
            except _Disconnected:
                self._close_pty()
                if self._stop.wait(self.downtime_s):
                    return
                self._open_pty()

    def _serve_connection(self) -> None:
        responder = make_responder(self.protocol, self.model, sbn=self.sbn, ident=self.ident)
        period = 1.0 / self.autoprint_hz if self.autoprint_hz > 0 else None
        next_print = time.monotonic() + period if period else None
        with selectors.DefaultSelector() as sel:
            sel.register(self._master, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                timeout = None if next_print is None else max(0.0, next_print - time.monotonic())
                for key, _ in sel.select(timeout):
                    if key.fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 64)
                        if self._drop.is_set():
                            self._drop.clear()
                            raise _Disconnected
                        continue
                    try:
                        data = os.read(self._master, 4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    for reply in responder.feed(data):
                        self._send(reply)
                if next_print is not None and period is not None:
                    now = time.monotonic()
                    if now >= next_print:
                        line = responder.autoprint_line()
                        if line is not None:
                            self._send(line)
                        next_print = max(next_print + period, now)

    def _send(self, reply: bytes) -> None:
        with self._lock:
            pending = self._faults.popleft() if self._faults else None
        if pending is not None:
            if pending.fault is Fault.NO_REPLY:
                return
            if pending.fault is Fault.GARBAGE:
                reply = garbage(reply)
            elif pending.fault is Fault.BAD_CHECKSUM:
                reply = bad_checksum(reply)
            elif pending.fault is Fault.LATE:
                if self._stop.wait(pending.delay_s):
                    return
            elif pending.fault is Fault.DISCONNECT:
                raise _Disconnected
        view = memoryview(reply)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                return  # nobody is reading: the rest of the line is lost
            except OSError:
                return
            view = view[written:]
