"""Serve a :class:`SimBus` behind a pseudo-terminal, on a background thread.

The driver opens the slave side (``/dev/pts/N``) exactly as it would a USB-RS485 adapter,
so real bytes cross a real tty. The simulator keeps its own handle on the slave open so
a driver may close and reopen the port without the terminal going away. An injected
*disconnect* (or :meth:`PtySimulator.restart`) closes the terminal and serves the same
controllers on a fresh one; an optional symlink always points at the current one.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty

from capa_watlow.sim.bus import Disconnect, SimBus

__all__ = ["PtySimulator"]


class PtySimulator:
    """A simulated bus on a pseudo-terminal.

    Args:
        bus: what answers.
        link: optional path of a symlink kept pointing at the current slave device.
        restart_after_disconnect_s: after an injected disconnect, come back on a new
            terminal after this delay (``None``: stay down until :meth:`restart`).
    """

    def __init__(
        self,
        bus: SimBus,
        *,
        link: str | None = None,
        restart_after_disconnect_s: float | None = 0.05,
    ) -> None:
        self.bus = bus
        self.link = link
        self.restart_after_disconnect_s = restart_after_disconnect_s
        self._master = -1
        self._slave = -1
        self._path = ""
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._io_lock = threading.Lock()
        self.generation = 0
        self.up = threading.Event()

    # ---------------------------------------------------------------- lifecycle
    @property
    def path(self) -> str:
        """Current slave device path (changes after a restart)."""
        return self._path

    def start(self) -> str:
        """Open the terminal and start serving; returns the slave path."""
        if self._thread is not None:
            return self._path
        self._wake_r, self._wake_w = os.pipe()
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="watlow-sim", daemon=True)
        self._thread.start()
        return self._path

    def stop(self) -> None:
        """Stop serving and close every descriptor. Idempotent."""
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link)

    def restart(self) -> str:
        """Drop the current terminal and serve on a new one; returns the new path."""
        with self._io_lock:
            self._close_pty()
            self._open_pty()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"r")
        return self._path

    def go_down(self) -> None:
        """Close the terminal without opening a new one (until :meth:`restart`)."""
        with self._io_lock:
            self._close_pty()

    def __enter__(self) -> PtySimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass untouched
        tty.setraw(master)
        self._master, self._slave = master, slave
        self._path = os.ttyname(slave)
        self.bus.reset()
        self.generation += 1
        if self.link:
            tmp = f"{self.link}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self._path, tmp)
            os.replace(tmp, self.link)  # atomic: a reader sees the old or the new terminal
        self.up.set()

    def _close_pty(self) -> None:
        self.up.clear()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _serve(self) -> None:
        while not self._stop.is_set():
            master = self._master
            fds = [self._wake_r] + ([master] if master >= 0 else [])
            try:
                readable, _, _ = select.select(fds, [], [], 0.2)
            except (OSError, ValueError):
                continue  # the terminal was swapped under us
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
            if master < 0 or master not in readable:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                continue
            for item in self.bus.feed(chunk):
                if self._stop.is_set():
                    return
                if isinstance(item, Disconnect):
                    self._disconnect()
                    break
                if item.delay_s and self._stop.wait(item.delay_s):
                    return
                with self._io_lock, contextlib.suppress(OSError):
                    if self._master == master:
                        os.write(master, item.data)

    def _disconnect(self) -> None:
        self.go_down()
        delay = self.restart_after_disconnect_s
        if delay is not None and not self._stop.wait(delay):
            self.restart()
