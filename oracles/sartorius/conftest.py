"""Fixtures for the Sartorius oracle tests.

- ``make_sim``: capa's balance simulator on a pty, for sartoriuslib's clients to drive.
- ``script_port``: a pty that answers exactly as a ``{request: reply}`` script built with
  sartoriuslib's own helpers (its canned frames captured on balances), for capa's driver.
  Every request capa sends must be a key of the script, byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import tty
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from capa_sartorius.sim import BalanceConfig, BalanceModel, PtySimulator


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., PtySimulator]]:
    """Start capa's simulator behind ``tmp_path/<name>``; stopped at teardown."""
    sims: list[PtySimulator] = []

    def make(protocol: str, *, autoprint_hz: float = 0.0, **config: Any) -> PtySimulator:
        sim = PtySimulator(
            BalanceModel(BalanceConfig(**config)),
            protocol=protocol,
            autoprint_hz=autoprint_hz,
            link=tmp_path / f"balance{len(sims)}",
        )
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


class ScriptPort:
    """A pty answering requests from a script; records what it could not answer."""

    def __init__(self, script: Mapping[bytes, bytes], protocol: str, link: Path) -> None:
        self.script = dict(script)
        self.protocol = protocol
        self.link = link
        self.requests: list[bytes] = []
        self.unanswered: list[bytes] = []
        self._buf = bytearray()
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave
        link.symlink_to(os.ttyname(slave))
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return str(self.link)

    def _requests(self) -> list[bytes]:
        out: list[bytes] = []
        if self.protocol == "xbpi":
            while self._buf and len(self._buf) >= self._buf[0] + 1:
                size = self._buf[0] + 1
                out.append(bytes(self._buf[:size]))
                del self._buf[:size]
            return out
        # SBI: CR LF after a command is optional for a balance (and sartoriuslib sends
        # none), so they separate commands here and are not part of the script keys.
        while b"\r\n" in self._buf or (self._buf and self._buf.rstrip(b"\r\n") in self.script):
            head, _, rest = bytes(self._buf).partition(b"\r\n")
            out.append(head)
            self._buf = bytearray(rest)
        return out

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._master, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fd == self._wake_r:
                        return
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        return
                    self._buf += data
                    for request in self._requests():
                        self.requests.append(request)
                        reply = self.script.get(request)
                        if reply is None:
                            self.unanswered.append(request)
                        else:
                            os.write(self._master, reply)

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def script_port(tmp_path: Path) -> Iterator[Callable[[Mapping[bytes, bytes], str], ScriptPort]]:
    """``script_port(script, protocol)``: a pty that replays ``script``."""
    ports: list[ScriptPort] = []

    def make(script: Mapping[bytes, bytes], protocol: str) -> ScriptPort:
        port = ScriptPort(script, protocol, tmp_path / f"scripted{len(ports)}")
        ports.append(port)
        return port

    yield make
    for port in ports:
        port.close()
