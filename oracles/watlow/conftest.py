"""Rigs for the Watlow oracle tests: capa's simulator and independent fakes on real ptys.

- ``capa_sim``: capa's EZ-Zone PM simulator behind a pseudo-terminal (what watlowlib's
  and anymodbus' clients are pointed at);
- ``mock_slave_pty``: anymodbus' ``MockSlave`` (an independent Modbus RTU slave) served on
  the master side of a pty, so capa's unmodified driver talks to it over the slave path;
- ``replay_pty``: a pty that answers each request it receives with the reply a real PM3
  gave to those exact bytes (captures published by watlowlib) and stays silent to any
  byte string not in the capture, so a driver must produce the captured bytes to get an
  answer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import pytest

from capa_watlow.sim import ControllerModel, PtySimulator, SimBus


@pytest.fixture
def capa_sim() -> Iterator[Callable[..., PtySimulator]]:
    """Factory: a started capa simulator (set point 25 degC at rest); stopped at teardown."""
    started: list[PtySimulator] = []

    def factory(
        *, protocol: str = "auto", word_order: str = "low_high", wire_unit: str = "degF",
        addresses: tuple[int, ...] = (1,),
    ) -> PtySimulator:  # fmt: skip
        controllers = [ControllerModel(a, setpoint_c=25.0, tau_s=0.05, serial=a) for a in addresses]
        bus = SimBus(
            controllers,
            protocol=protocol,
            word_order=word_order,
            wire_unit=wire_unit,  # type: ignore[arg-type]
        )
        sim = PtySimulator(bus)
        sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


class _MasterStream(anyio.abc.ByteStream):
    """An anyio byte stream over a pty master file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            await anyio.wait_readable(self.fd)
            try:
                data = os.read(self.fd, max_bytes)
            except OSError:
                raise anyio.EndOfStream from None
            if data:
                return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            await anyio.wait_writable(self.fd)
            view = view[os.write(self.fd, view) :]

    async def send_eof(self) -> None:
        """A pty has no half-close."""

    async def aclose(self) -> None:
        """The fixture closes the descriptors."""


class PtyPair:
    """A raw pty: ``path`` for the driver, ``master`` for the fake device."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline
        tty.setraw(self.master)
        self.path = os.ttyname(self._slave)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def mock_slave_pty() -> Iterator[Callable[[Any], str]]:
    """Serve an anymodbus ``MockSlave`` on a pty; returns the path a driver opens."""
    with anyio.from_thread.start_blocking_portal() as portal:
        pairs: list[PtyPair] = []

        def serve(slave: Any) -> str:
            pair = PtyPair()
            pairs.append(pair)
            portal.start_task_soon(slave.serve, _MasterStream(pair.master))
            return pair.path

        try:
            yield serve
        finally:
            portal.call(portal.stop, True)
            for pair in pairs:
                pair.close()


@pytest.fixture
def replay_pty() -> Iterator[Callable[[dict[bytes, bytes]], tuple[str, list[bytes]]]]:
    """A pty answering captured requests with their captured replies.

    Returns ``(path, unanswered)``: ``unanswered`` collects every request that was not
    in the capture (and so got no reply).
    """
    stops: list[Callable[[], None]] = []

    def start(script: dict[bytes, bytes]) -> tuple[str, list[bytes]]:
        pair = PtyPair()
        unanswered: list[bytes] = []
        stop = threading.Event()
        longest = max(map(len, script))

        def loop() -> None:
            import select

            buf = b""
            while not stop.is_set():
                ready, _, _ = select.select([pair.master], [], [], 0.05)
                if not ready:
                    if buf:  # a pause after bytes that matched nothing ends that request
                        unanswered.append(buf)
                        buf = b""
                    continue
                try:
                    buf += os.read(pair.master, 4096)
                except OSError:
                    return
                if buf in script:
                    os.write(pair.master, script[buf])
                    buf = b""
                elif len(buf) > longest:
                    unanswered.append(buf)
                    buf = b""

        thread = threading.Thread(target=loop, name="watlow-replay", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)
            pair.close()

        stops.append(halt)
        return pair.path, unanswered

    yield start
    for halt in stops:
        halt()
