"""A third-party-style plugin for the fault-injection tests (public capa API only).

Sinks: ``test.csv`` writes every scalar row, wide sample row and event to a CSV file;
``test.slow`` takes its time over each record; ``test.raising`` raises on a chosen record
(or on open).
Adapters: ``test.bad_emitter`` emits 0-d columns (the shape of the old NI-DAQ polled
bug); ``test.runaway`` streams blocks and never yields to its loop, so a stop cannot
reach it and its worker is abandoned while it keeps emitting.
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

import capa

RUNAWAY_RELEASE = threading.Event()
"""Set by the tests' teardown: ends runaway streams left behind by abandoned workers."""


# ---------------------------------------------------------------------------- sinks
class CsvConfig(capa.ConfigModel):
    """Where the CSV goes."""

    path: str = Field(description="Output file (absolute).")


class CsvSink(capa.Sink):
    """Writes ``kind,t_mono_ns,name,value`` lines: one per scalar row, one per event."""

    id: ClassVar[str] = "test.csv"
    Config: ClassVar[type[capa.ConfigModel]] = CsvConfig

    def __init__(self, config: capa.ConfigModel) -> None:
        super().__init__(config)
        self._file: Any = None
        self._writer: Any = None

    async def open(self, ctx: capa.SinkContext) -> None:
        """Open the CSV file and write the header."""
        assert isinstance(self.config, CsvConfig)
        # A small local file; a real sink would open it off the loop.
        self._file = Path(self.config.path).open("w", newline="")  # noqa: ASYNC230, SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(["kind", "t_mono_ns", "name", "value", "run_id"])
        self._run_id = ctx.run_id

    def consume(self, record: capa.RunRecord) -> None:
        """One line per row or event."""
        if isinstance(record, capa.ScalarRows):
            cols = record.batch.to_pydict()
            for t, ch, v in zip(cols["t_mono_ns"], cols["channel"], cols["value"], strict=True):
                self._writer.writerow(["sample", t, ch, v, self._run_id])
        elif isinstance(record, capa.SampleRows):
            # A wide batch: one line per tick, the channel columns as "name=value".
            cols = record.batch.to_pydict()
            names = [n for n in cols if n != "t_mono_ns" and "." not in n]
            for i, t in enumerate(cols["t_mono_ns"]):
                cells = ";".join(f"{n}={cols[n][i]}" for n in names)
                self._writer.writerow(["wide:" + record.table, t, cells, "", self._run_id])
        elif isinstance(record, capa.EventRecord):
            self._writer.writerow(["event", record.t_mono_ns, record.kind, "", self._run_id])

    async def close(self, run_status: str) -> None:
        """Write the run status and close the file."""
        self._writer.writerow(["end", "", run_status, "", self._run_id])
        self._file.close()


class SlowSink(capa.Sink):
    """Takes 50 ms over each record."""

    id: ClassVar[str] = "test.slow"
    Config: ClassVar[type[capa.ConfigModel]] = capa.EmptyConfig

    async def open(self, ctx: capa.SinkContext) -> None:
        """Nothing to open."""

    def consume(self, record: capa.RunRecord) -> None:
        """Sleep (a sink whose network peer is slow)."""
        time.sleep(0.05)

    async def close(self, run_status: str) -> None:
        """Nothing to close."""


class HangingSink(SlowSink):
    """Blocks in its first consume() until the test releases it."""

    id: ClassVar[str] = "test.hanging"

    def consume(self, record: capa.RunRecord) -> None:
        """Hang (a network peer that stopped answering)."""
        RUNAWAY_RELEASE.wait(60)


class RaisingConfig(capa.ConfigModel):
    """When to fail."""

    fail_on: int = Field(3, description="Raise on this record (1-based); 0 raises in open().")


class RaisingSink(capa.Sink):
    """Raises on one record (or in open)."""

    id: ClassVar[str] = "test.raising"
    Config: ClassVar[type[capa.ConfigModel]] = RaisingConfig

    def __init__(self, config: capa.ConfigModel) -> None:
        super().__init__(config)
        self.seen = 0

    async def open(self, ctx: capa.SinkContext) -> None:
        """Raises when ``fail_on`` is 0."""
        assert isinstance(self.config, RaisingConfig)
        if self.config.fail_on == 0:
            raise ConnectionRefusedError("sink server refused the connection")

    def consume(self, record: capa.RunRecord) -> None:
        """Raises on record number ``fail_on``."""
        assert isinstance(self.config, RaisingConfig)
        self.seen += 1
        if self.seen == self.config.fail_on:
            raise RuntimeError("sink on fire")

    async def close(self, run_status: str) -> None:
        """Nothing to close."""


# ---------------------------------------------------------------------------- adapters
class EmitterParams(capa.ConfigModel):
    """Parameters of the test adapters."""

    rate_hz: float = Field(50.0, gt=0)
    block: int = Field(100, ge=1)
    yield_for_s: float = Field(0.2, ge=0, description="Runaway: seconds before it stops yielding.")


class BadEmitter(capa.Adapter):
    """Polled; each read returns one row whose columns are 0-d scalars."""

    id = "test.bad_emitter"
    Params = EmitterParams
    acquisition = capa.Acquisition.POLLED
    family = "test"

    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """One resource per device name is enough here."""
        return "test:bad"

    @classmethod
    def fields(cls, params: capa.ConfigModel) -> list[capa.FieldSpec]:
        """One voltage field."""
        return [capa.FieldSpec("v", "V")]

    def poll_interval_s(self) -> float:
        """``1 / rate_hz``."""
        assert isinstance(self.params, EmitterParams)
        return 1.0 / self.params.rate_hz

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def start(self, ctx: capa.AdapterContext) -> None:
        """Remember the clock."""
        self._ctx = ctx

    async def stop(self) -> None:
        """Nothing to stop."""

    async def read(self) -> list[capa.Emission]:
        """A 0-d time and a 0-d value: what the old NI polled mode emitted."""
        t = self._ctx.clock.now_ns()
        return [capa.SampleBatch(np.int64(t), {"v": np.float64(1.5)})]

    async def command(self, command: capa.Command) -> capa.CommandResult:
        """No commands."""
        return capa.CommandResult(False, "no commands")


class FallsSilent(BadEmitter):
    """Polled; valid samples for ``yield_for_s`` seconds, then none at all (a hung link)."""

    id = "test.falls_silent"

    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """Its own worker."""
        return "test:silent"

    async def read(self) -> list[capa.Emission]:
        """One valid sample per poll until the device goes quiet."""
        assert isinstance(self.params, EmitterParams)
        t = self._ctx.clock.now_ns()
        if t > self.params.yield_for_s * 1e9:
            return []
        return [capa.SampleBatch(np.array([t], np.int64), {"v": np.array([1.5])})]


class Runaway(BadEmitter):
    """Streams blocks in a loop that never yields: stop() cannot reach it."""

    id = "test.runaway"
    acquisition = capa.Acquisition.STREAMED

    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """Its own worker."""
        return "test:runaway"

    def sampling(self) -> capa.Acquisition:
        """Streamed."""
        return capa.Acquisition.STREAMED

    async def stream(self, ctx: capa.AdapterContext) -> None:
        """Emit a block every 10 ms; after ``yield_for_s`` it never awaits again.

        (Like the old block-mode simulator once it fell behind its sample clock; with 0,
        like a driver loop that blocks from the start.)
        """
        assert isinstance(self.params, EmitterParams)
        n = self.params.block
        if self.params.yield_for_s:
            await asyncio.sleep(self.params.yield_for_s)
        while not RUNAWAY_RELEASE.is_set():
            now = ctx.clock.now_ns()
            t = now - np.arange(n - 1, -1, -1, dtype=np.int64) * 1000
            ctx.emit(capa.SampleBatch(t, {"v": np.ones(n)}))
            time.sleep(0.01)  # noqa: ASYNC251 - the point: this loop never yields


@capa.hookimpl
def capa_register_sinks() -> list[type[capa.Sink]]:
    """The test sinks."""
    return [CsvSink, SlowSink, RaisingSink, HangingSink]


@capa.hookimpl
def capa_register_adapters() -> list[type[capa.Adapter]]:
    """The test adapters."""
    return [BadEmitter, FallsSilent, Runaway]
