"""Shared fixtures: simulators behind real pseudo-terminals, stopped after each test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from capa_watlow.adapter import EzZonePM
from capa_watlow.sim import ControllerModel, PtySimulator, SimBus

run = asyncio.run  # one adapter coroutine at a time, as the resource's worker would


@pytest.fixture
def make_sim(tmp_path) -> Iterator[Callable[..., PtySimulator]]:
    """Factory: a started pty simulator; every one is stopped at teardown."""
    started: list[PtySimulator] = []

    def factory(
        addresses=(1,), *, tau_s=0.05, wire_unit="degF", word_order="low_high", link=True, **kw
    ) -> PtySimulator:
        # At rest: the set point equals ambient (25 degC), so values are predictable. The
        # factory default (75 degF) is tested on the model itself.
        controllers = [
            ControllerModel(a, tau_s=tau_s, serial=a, setpoint_c=25.0) for a in addresses
        ]
        bus = SimBus(controllers, wire_unit=wire_unit, word_order=word_order, **kw)
        sim = PtySimulator(bus, link=str(tmp_path / f"bus{len(started)}") if link else None)
        sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def open_adapters() -> Iterator[Callable[..., EzZonePM]]:
    """Factory: an opened adapter; every one is closed at teardown."""
    opened: list[EzZonePM] = []

    def factory(name: str = "oven", **params: Any) -> EzZonePM:
        params.setdefault("timeout_s", 0.2)
        adapter = EzZonePM(name, EzZonePM.Params(**params))
        run(adapter.open())
        opened.append(adapter)
        return adapter

    yield factory
    for adapter in opened:
        run(adapter.close())


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """Every test leaves no simulator thread, shared port or sim:// simulator behind."""
    import threading

    from capa_watlow import transport
    from capa_watlow.sim import url

    yield
    assert [t.name for t in threading.enumerate() if t.name == "watlow-sim"] == []
    assert transport._ports == {}
    assert url._running == {}
