"""Shared helpers: an AdapterContext that collects emissions, on a real RunClock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from capa import DeviceEvent, RunClock, SampleBatch


class Collector:
    """A minimal AdapterContext: records every emission (thread-safe, never blocks)."""

    def __init__(self, device: str = "daq", latest: dict[str, float] | None = None) -> None:
        self.device = device
        self.clock = RunClock()
        self.bundle_path: Path | None = None
        self.emitted: list = []
        self._latest = latest or {}
        self._lock = threading.Condition()

    def emit(self, emission) -> None:
        with self._lock:
            self.emitted.append(emission)
            self._lock.notify_all()

    def wait_batches(self, n: int, timeout: float = 10) -> None:
        """Block until ``n`` sample batches arrived (call it through asyncio.to_thread)."""
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.batches()) >= n, timeout), "no data"

    def latest(self, channel: str) -> float | None:
        return self._latest.get(channel)

    def batches(self) -> list[SampleBatch]:
        return [e for e in self.emitted if isinstance(e, SampleBatch)]

    def events(self, kind: str | None = None) -> list[DeviceEvent]:
        return [e for e in self.emitted if isinstance(e, DeviceEvent) and kind in (None, e.kind)]

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([b.values[name] for b in self.batches()])

    def times(self) -> np.ndarray:
        return np.concatenate([b.t_mono_ns for b in self.batches()])


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    """Every test leaves no reader thread or gRPC server thread behind."""
    before = {t.ident for t in threading.enumerate()}
    yield
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [
            t
            for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and not t.daemon
        ]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {[t.name for t in extra]}")
