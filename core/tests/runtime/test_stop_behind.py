"""A polled device read slower than its rate still lets a stop run (issue 15 item 5).

The worker's polling loop is every polled adapter's acquisition loop (Watlow, Sartorius,
the NI task in polled mode, `capa.sim.signals` polled): once a read takes longer than the
poll interval, every tick is already due. The loop must still give the worker's event loop
a turn per read, or `stop_sampling` could never run there and the worker would be
abandoned after the grace period. Bounds are about correctness, not speed.
"""

from __future__ import annotations

import threading
import time

import anyio
import numpy as np

import capa
from capa.runtime import WorkerPool
from capa.runtime.plan import DevicePlan


class BusyPoller(capa.Adapter):
    """Asked for 10 kHz; each read blocks its thread for 2 ms (a slow serial exchange)."""

    id = "test.busy_poller"

    class Params(capa.ConfigModel):
        pass

    reads = 0
    reads_after_stop = 0
    stopping = threading.Event()

    @classmethod
    def resource_id(cls, params):
        return "test:busy"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("x", "V")]

    def poll_interval_s(self) -> float:
        return 1e-4

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        time.sleep(0.002)  # noqa: ASYNC251 - a blocking driver call, on purpose
        type(self).reads += 1
        if type(self).stopping.is_set():
            type(self).reads_after_stop += 1
        return [capa.SampleBatch(np.array([time.monotonic_ns()]), {"x": np.ones(1)})]

    async def stop(self):
        type(self).stopping.set()

    async def command(self, command):
        return capa.CommandResult(False)


def test_a_polled_device_behind_its_rate_stops_without_being_abandoned():
    pool = WorkerPool([DevicePlan("p", BusyPoller, BusyPoller.Params(), "test:busy")])
    emitted: list[int] = []

    async def main() -> list[str]:
        await pool.open()
        pool.arm_all(
            capa.RunClock(),
            lambda device, emission: emitted.append(len(emission.t_mono_ns)),
            lambda device, exc: None,
            lambda channel: None,
        )
        await pool.begin_sampling_all()
        await anyio.sleep(0.5)  # hundreds of ticks late by now
        abandoned = await pool.stop_sampling_all(5.0)
        await pool.close(5.0)
        return abandoned

    assert anyio.run(main) == []
    assert BusyPoller.reads > 10  # it really was polling, and behind (10 kHz asked)
    assert sum(emitted) == BusyPoller.reads  # every read reached the handler
    # stop() ran on the worker's loop between two reads: at most the read in progress
    # when the stop arrived finished afterwards.
    assert BusyPoller.reads_after_stop <= 1
    assert pool.workers[0].stats.late_polls > 0
