"""Loop-lag and writer-stall warnings become events, never blocking the event loop."""

from __future__ import annotations

import threading

import anyio

from capa.clock import RunClock
from capa.components.emissions import EventRecord
from capa.runtime.monitors import MonitorEvents, watch_saturation
from capa.runtime.session import WriterProgress


class _StuckWriter:
    def progress(self) -> WriterProgress:
        return WriterProgress(queue_depth=5, last_accept_mono_ns=1, rows=10)


def test_a_stall_is_warned_about_once_before_the_trip():
    stalls: list[tuple[float, int]] = []

    async def main():
        return await watch_saturation(
            _StuckWriter(),  # type: ignore[arg-type]
            0.2,
            poll_s=0.01,
            on_stall=lambda s, depth: stalls.append((s, depth)),
        )

    trip = anyio.run(main)
    assert len(stalls) == 1
    stalled_s, depth = stalls[0]
    assert 0.1 <= stalled_s < trip.blocked_s
    assert depth == 5


class _Session:
    """Records what is submitted; ``gate`` holds submit back like a full writer queue."""

    def __init__(self) -> None:
        self.records: list[EventRecord] = []
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, record: EventRecord) -> None:
        self.gate.wait(10)
        self.records.append(record)


def test_warn_never_blocks_and_flush_records_everything_in_order():
    session = _Session()
    clock = RunClock()
    events = MonitorEvents(session, clock, poll_s=0.01)  # type: ignore[arg-type]
    session.gate.clear()  # the writer is "full": recording would block

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(events.run)
            before = clock.now_ns()
            events.warn("conductor.loop_lag", "late 1", {"lag_ms": 80.0})
            events.warn("conductor.saturation_warning", "stalled", {"stalled_s": 5.0})
            after = clock.now_ns()
            await anyio.sleep(0.05)  # run() took the first into a thread, blocked there
            tg.cancel_scope.cancel()  # and cancelling run() does not wait for it
        session.gate.set()
        await events.flush()  # waits for the thread it left, then records the rest
        return before, after

    before, after = anyio.run(main)
    assert [r.kind for r in session.records] == [
        "conductor.loop_lag",
        "conductor.saturation_warning",
    ]
    first = session.records[0]
    assert first.severity.value == "warning"
    assert first.source == "conductor"
    assert before <= first.t_mono_ns <= after  # stamped when observed, not when written
    assert first.metadata == {"lag_ms": 80.0}
    assert events.pending == 0
