"""Faults in the runtime: cancelled opens, zero and huge grace periods, failure summaries."""

from __future__ import annotations

import errno
import gc
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import anyio
import pytest

import capa
from capa.bundle.space import describe_write_failure, is_disk_full
from capa.errors import DeviceError
from capa.runtime import WorkerPool
from capa.runtime.failures import describe_failure, leaf_exceptions
from capa.runtime.headless import open_pool_or_stop
from capa.runtime.plan import DevicePlan
from capa.runtime.worker import MAX_WAIT_S, bounded_wait

RELEASE = threading.Event()


class Slow(capa.Adapter):
    """A test device whose open blocks its worker thread (a driver stuck in open)."""

    id = "test.slow"

    class Params(capa.ConfigModel):
        open_s: float = 0.0
        fail_open: bool = False

    @classmethod
    def resource_id(cls, params):
        return "test:slow"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("x", "V")]

    async def open(self):
        if self.params.fail_open:
            raise OSError("port busy")
        RELEASE.wait(self.params.open_s)  # blocking, on purpose

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(False)


def slow(name: str, resource: str, **params: object) -> DevicePlan:
    return DevicePlan(name, Slow, Slow.Params(**params), resource)


def test_a_stop_during_a_blocking_open_returns_an_operator_stop_at_once():
    RELEASE.clear()
    pool = WorkerPool([slow("quick", "r1"), slow("stuck", "r2", open_s=60)])
    stop = anyio.Event()

    async def main() -> tuple[str | None, float]:
        async def press_ctrl_c() -> None:
            await anyio.sleep(0.3)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(press_ctrl_c)
            # The open blocks for 60 s: only a cancelled open returns within this bound.
            with anyio.fail_after(15):
                started = time.monotonic()
                refusal = await open_pool_or_stop(pool, stop)
                return refusal, time.monotonic() - started

    try:
        refusal, _elapsed = anyio.run(main)
    finally:
        RELEASE.set()  # let the abandoned thread finish
    assert refusal is not None
    assert refusal.startswith("operator_stop")
    assert pool.state.value == "closed"
    stuck = pool.worker_for("stuck")
    assert stuck.stats.abandoned  # not waited for
    assert pool.worker_for("quick").state.value == "closed"  # opened, then closed again


def test_an_open_failure_is_still_a_pool_open_refusal():
    pool = WorkerPool([slow("bad", "r1", fail_open=True)])

    async def main() -> str | None:
        return await open_pool_or_stop(pool, anyio.Event())

    refusal = anyio.run(main)
    assert refusal is not None
    assert refusal.startswith("pool_open: bad (r1): could not open: OSError: port busy")


def test_a_stop_set_before_open_finishes_closes_the_pool_and_refuses():
    pool = WorkerPool([slow("a", "r1")])
    stop = anyio.Event()
    stop.set()

    async def main() -> str | None:
        return await open_pool_or_stop(pool, stop)

    assert (anyio.run(main) or "").startswith("operator_stop")
    assert pool.state.value == "closed"


class Poller(capa.Adapter):
    """A polled test device."""

    id = "test.poller"

    class Params(capa.ConfigModel):
        pass

    @classmethod
    def resource_id(cls, params):
        return "test:poller"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("x", "V")]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(False)


@pytest.mark.parametrize("grace", [0.0, 2.0**63, float("inf")])
def test_stop_and_close_with_zero_or_huge_grace(grace: float):
    pool = WorkerPool([DevicePlan("p", Poller, Poller.Params(), "test:poller")])

    async def main() -> None:
        await pool.open()
        pool.arm_all(capa.RunClock(), lambda d, e: None, lambda d, e: None, lambda c: None)
        await pool.begin_sampling_all()
        await anyio.sleep(0.05)
        await pool.stop_sampling_all(grace)
        await pool.close(grace)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(main)
        gc.collect()  # an unawaited coroutine warns when it is collected
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_bounded_wait_clamps_every_value_a_timer_cannot_take():
    assert bounded_wait(float("inf")) == MAX_WAIT_S
    assert bounded_wait(2.0**63) == MAX_WAIT_S
    assert bounded_wait(float("nan")) == 0.0
    assert bounded_wait(-1) == 0.0
    assert bounded_wait(2.5) == 2.5
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join(bounded_wait(2.0**63))  # Thread.join(2**63) itself raises OverflowError
    assert not thread.is_alive()


def test_failures_are_unwrapped_from_nested_groups():
    inner = DeviceError("daq (daqmx:cDAQ1Mod1): could not start sampling: RpcError: x")
    group = ExceptionGroup("outer", [ExceptionGroup("unhandled errors", [inner])])
    assert leaf_exceptions(group) == [inner]
    text = describe_failure(group)
    assert text == f"DeviceError: {inner}"
    assert "ExceptionGroup" not in text


def test_disk_full_is_recognised_in_every_form_it_arrives():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # pyarrow: no errno attribute, the number is in the text
    assert is_disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    wrapped = RuntimeError("finalize failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(ExceptionGroup("g", [wrapped]))
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not is_disk_full(ValueError("no"))
    eio = describe_write_failure(Path("/r/b"), OSError(errno.EIO, "Input/output error"))
    assert eio.startswith("I/O error writing /r/b")
    full = describe_write_failure(Path("/r/b"), OSError(errno.ENOSPC, "No space left"))
    assert full.startswith("disk full: no space left on the device holding /r/b")
