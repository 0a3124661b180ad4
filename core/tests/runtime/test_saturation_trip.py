"""The saturation trip names a resource (seed 003 ``$.resource_id``)."""

from __future__ import annotations

import threading
import time

import anyio

from capa.runtime.monitors import WRITER_RESOURCE, watch_saturation
from capa.runtime.session import WriterProgress
from capa.runtime.worker import WorkerStats


class _StuckWriter:
    """A session whose writer holds queued work and never accepts any."""

    def progress(self) -> WriterProgress:
        return WriterProgress(queue_depth=5, last_accept_mono_ns=1, rows=10)


def test_no_blocked_producer_names_the_writer():
    async def main():
        return await watch_saturation(_StuckWriter(), 0.05, poll_s=0.01)  # type: ignore[arg-type]

    trip = anyio.run(main)
    meta = trip.metadata()
    assert meta["resource_id"] == WRITER_RESOURCE
    assert meta["blocked_resources"] == {}
    assert meta["queue_depth"] == 5


def test_the_longest_blocked_producer_is_named():
    blocked = [("serial:COM6", 2.5), ("sim:daq", 0.4)]

    async def main():
        return await watch_saturation(
            _StuckWriter(),  # type: ignore[arg-type]
            0.05,
            poll_s=0.01,
            blocked=lambda: blocked,
        )

    meta = anyio.run(main).metadata()
    assert meta["resource_id"] == "serial:COM6"
    assert meta["blocked_resources"] == {"serial:COM6": 2.5, "sim:daq": 0.4}


def test_worker_stats_track_a_handoff_in_progress_across_threads():
    stats = WorkerStats()
    assert stats.blocked_for_s() is None
    release = threading.Event()
    entered = threading.Event()

    def producer() -> None:
        started = stats.handoff_started()
        entered.set()
        release.wait(5)
        stats.handoff_ended(started)

    t = threading.Thread(target=producer)
    t.start()
    entered.wait(5)
    time.sleep(0.05)
    during = stats.blocked_for_s()
    release.set()
    t.join(5)
    assert during is not None
    assert during >= 0.04
    assert stats.blocked_for_s() is None
    assert len(stats.handoff_ms) == 1
    assert stats.handoff_ms[0] >= 40
