"""Fixtures: simulators on real pseudo-terminals and adapters that are always closed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

import capa
from capa_sartorius.adapter import SartoriusBalance
from capa_sartorius.params import BalanceParams
from capa_sartorius.sim import BalanceConfig, BalanceModel, PtySimulator


def arun(fn: Callable[..., Any], *args: Any) -> Any:
    """Run an adapter coroutine function to completion (adapters run on worker threads)."""
    return anyio.run(fn, *args)


def batch_of(emissions) -> capa.SampleBatch:
    batches = [e for e in emissions if isinstance(e, capa.SampleBatch)]
    assert len(batches) == 1
    return batches[0]


def records_of(emissions) -> capa.DeviceRecords:
    records = [e for e in emissions if isinstance(e, capa.DeviceRecords)]
    assert len(records) == 1
    return records[0]


def events_of(emissions) -> list[capa.DeviceEvent]:
    return [e for e in emissions if isinstance(e, capa.DeviceEvent)]


def read_until(adapter: SartoriusBalance, predicate, timeout_s: float = 5.0) -> list:
    """Read ticks until ``predicate(emissions)`` holds; return every tick's emissions."""
    ticks = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        emissions = arun(adapter.read)
        ticks.append(emissions)
        if predicate(emissions):
            return ticks
    raise AssertionError(f"condition not reached within {timeout_s} s; last tick: {ticks[-1]}")


@pytest.fixture
def h() -> SimpleNamespace:
    """Helpers for the tests (importlib import mode: tests cannot import conftest)."""
    return SimpleNamespace(
        arun=arun,
        batch_of=batch_of,
        records_of=records_of,
        events_of=events_of,
        read_until=read_until,
    )


@pytest.fixture
def make_sim(tmp_path) -> Iterator[Callable[..., PtySimulator]]:
    """Start a simulator on a pty behind ``tmp_path/<name>``; stopped at teardown."""
    sims: list[PtySimulator] = []

    def make(protocol: str = "sbi", *, name: str = "balance", **kw: Any) -> PtySimulator:
        sim_kw = {k: kw.pop(k) for k in ("autoprint_hz", "downtime_s", "ident") if k in kw}
        model = BalanceModel(BalanceConfig(**kw))
        sim = PtySimulator(model, protocol=protocol, link=tmp_path / name, **sim_kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def make_adapter() -> Iterator[Callable[..., SartoriusBalance]]:
    """Open a ``sartorius.balance`` adapter; closed at teardown."""
    adapters: list[SartoriusBalance] = []

    def make(port: str, protocol: str = "sbi", **kw: Any) -> SartoriusBalance:
        kw.setdefault("timeout_s", 1.0)
        adapter = SartoriusBalance("balance", BalanceParams(port=port, protocol=protocol, **kw))
        adapters.append(adapter)
        arun(adapter.open)
        return adapter

    yield make
    for adapter in adapters:
        arun(adapter.close)
