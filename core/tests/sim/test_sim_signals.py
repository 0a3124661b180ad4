"""The capa.sim.signals adapter, driven directly with a minimal adapter context."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from pydantic import ValidationError

from capa import Command, RunClock
from capa.sim.signals import SimSignals
from capa.testing import check_adapter


class Ctx:
    def __init__(self, latest=None):
        self.device = "sim1"
        self.clock = RunClock()
        self.emitted = []
        self._latest = latest or {}

    def emit(self, emission):
        self.emitted.append(emission)

    def latest(self, channel):
        return self._latest.get(channel)


def make(**params):
    p = SimSignals.Params.model_validate(params)
    return SimSignals("sim1", p)


def test_conformance_and_description():
    params = SimSignals.Params.model_validate(
        {
            "signals": {
                "sp": {"kind": "constant", "value": 25, "unit": "degC"},
                "pv": {"kind": "follow", "source": "sp", "tau_s": 1},
            },
            "writable": ["sp"],
            "resource": "oven",
        }
    )
    check_adapter(SimSignals, params)
    assert SimSignals.resource_id(params) == "sim:oven"
    assert SimSignals.writable_fields(params) == frozenset({"sp"})
    assert [f.unit for f in SimSignals.fields(params)] == ["degC", ""]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"signals": {}}, "at least 1"),
        ({"signals": {"a": {"kind": "sine"}}, "writable": ["a"]}, "must be a constant"),
        ({"signals": {"a": {"kind": "constant"}}, "writable": ["b"]}, "not one of the signals"),
        ({"signals": {"a": {"kind": "square"}}}, "does not match any of the expected tags"),
        ({"signals": {"a": {"kind": "sine", "period_s": 0}}}, "greater than 0"),
        ({"signals": {"a": {"kind": "constant"}}, "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_params_are_refused(params, message):
    with pytest.raises(ValidationError, match=message):
        SimSignals.Params.model_validate(params)


def test_polled_read_write_and_follow():
    async def scenario():
        dev = make(
            signals={
                "sp": {"kind": "constant", "value": 20.0},
                "pv": {"kind": "follow", "source": "sp", "tau_s": 0},
                "wave": {"kind": "sine", "amplitude": 2, "period_s": 4},
            },
            writable=["sp"],
        )
        ctx = Ctx()
        await dev.open()
        await dev.start(ctx)
        (first,) = await dev.read()
        assert first.values["sp"][0] == 20.0
        assert first.values["pv"][0] == 20.0
        result = await dev.command(Command.write("sp", 150.0))
        assert result.accepted
        (second,) = await dev.read()
        assert second.values["pv"][0] == 150.0
        assert abs(second.values["wave"][0]) <= 2.0
        assert second.t_mono_ns[0] >= first.t_mono_ns[0]
        refused = await dev.command(Command.write("wave", 1.0))
        assert not refused.accepted
        assert "not writable" in refused.detail
        assert not (await dev.command(Command("explode"))).accepted
        assert not (await dev.command(Command.write("sp", math.nan))).accepted
        await dev.close()

    asyncio.run(scenario())


def test_follow_a_channel_of_the_run_with_lag():
    async def scenario():
        dev = make(
            signals={
                "flux": {
                    "kind": "follow",
                    "source": "heater.pv",
                    "gain": 0.1,
                    "tau_s": 1.0,
                    "initial": 0.0,
                }
            }
        )
        ctx = Ctx(latest={"heater.pv": 500.0})
        await dev.start(ctx)
        await dev.read()
        dev._last_ns -= 3_000_000_000  # pretend 3 s passed since the previous read
        (batch,) = await dev.read()
        expected = 50.0 * (1 - math.exp(-3.0))
        assert batch.values["flux"][0] == pytest.approx(expected, rel=1e-2)

    asyncio.run(scenario())


def test_block_mode_times_come_from_the_sample_clock():
    async def scenario():
        dev = make(
            mode="block",
            sample_rate_hz=10_000,
            block_size=500,
            signals={"v": {"kind": "ramp", "rate_per_s": 1.0}},
        )
        ctx = Ctx()
        await dev.start(ctx)
        task = asyncio.create_task(dev.stream(ctx))
        await asyncio.sleep(0.23)
        await dev.stop()
        await asyncio.wait_for(task, 1)
        return ctx.emitted

    batches = asyncio.run(scenario())
    assert len(batches) >= 3
    t = np.concatenate([b.t_mono_ns for b in batches])
    assert np.all(np.diff(t) == 100_000)  # exactly the 10 kS/s period, across blocks
    v = np.concatenate([b.values["v"] for b in batches])
    assert np.allclose(v, (t - t[0]) / 1e9 + v[0])


def test_injected_error_fault_raises_on_read():
    async def scenario():
        dev = make(signals={"a": {"kind": "constant"}}, fault={"kind": "error", "after_s": 0})
        await dev.start(Ctx())
        with pytest.raises(RuntimeError, match="injected read error"):
            await dev.read()

    asyncio.run(scenario())


def test_block_mode_behind_its_clock_still_yields_so_stop_works():
    """Issue 15 item 5: once behind, the stream never yielded; stop() could not run."""
    import threading
    import time

    adapter = make(
        mode="block",
        sample_rate_hz=10_000_000,
        block_size=1000,
        signals={"x": {"kind": "sine", "amplitude": 1, "period_s": 1}},
    )

    class SlowCtx(Ctx):
        def emit(self, emission):
            super().emit(emission)
            time.sleep(0.002)  # a writer applying backpressure: 10 MS/s cannot be kept up

    ctx = SlowCtx()
    outcome: dict[str, object] = {}

    async def body() -> None:
        await adapter.start(ctx)
        task = asyncio.ensure_future(adapter.stream(ctx))

        async def stop_soon() -> None:
            await asyncio.sleep(0.2)
            outcome["stop_called_after_blocks"] = len(ctx.emitted)
            await adapter.stop()

        stopper = asyncio.ensure_future(stop_soon())
        await task
        await stopper

    # On a thread with a deadline: without the fix the loop never runs stop_soon and the
    # stream goes on forever; the test must fail, not hang.
    thread = threading.Thread(target=lambda: asyncio.run(body()), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the stream did not stop: it never yields when behind"
    assert outcome["stop_called_after_blocks"] > 0
    # It stopped at the next block boundary after stop().
    assert len(ctx.emitted) <= int(outcome["stop_called_after_blocks"]) + 2  # type: ignore[call-overload]
