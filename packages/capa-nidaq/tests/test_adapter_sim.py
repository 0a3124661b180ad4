"""The nidaq.task adapter on the simulated backend, driven as its worker would drive it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from capa import EventSeverity
from capa_nidaq.adapter import NidaqTask
from capa_nidaq.backend import DeviceLostError

from .conftest import Collector

CHANNELS = [
    {"kind": "thermocouple", "physical_channel": "cDAQ1Mod1/ai0", "name": "tc0"},
    {"kind": "thermocouple", "physical_channel": "cDAQ1Mod1/ai1", "name": "tc1", "units": "K"},
    {
        "kind": "voltage",
        "physical_channel": "cDAQ1Mod2/ai0",
        "name": "v0",
        "min": -5,
        "max": 5,
        "sim": {"amplitude": 2.0, "period_s": 0.1, "noise_sigma": 0},
    },
]


def make(device: str = "sim://?seed=1&ambient=25", **kw) -> NidaqTask:
    kw.setdefault("channels", CHANNELS)
    return NidaqTask("daq", NidaqTask.Params.model_validate({"device": device, **kw}))


async def stream_for(adapter: NidaqTask, ctx: Collector, seconds: float) -> None:
    await adapter.open()
    await adapter.start(ctx)
    task = asyncio.ensure_future(adapter.stream(ctx))
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        await adapter.stop()
        await task
    finally:
        await adapter.close()


def test_hardware_clocked_blocks_are_timed_by_the_sample_clock():
    adapter = make(timing={"sample_rate_hz": 5000, "block_size": 250})
    ctx = Collector()
    asyncio.run(stream_for(adapter, ctx, 0.6))
    batches = ctx.batches()
    assert len(batches) >= 2
    assert all(len(b) == 250 for b in batches)
    t = ctx.times()
    assert (np.diff(t) == 200_000).all()  # 5 kS/s: exactly 200 us apart, across blocks
    assert t[-1] <= ctx.clock.now_ns()  # no sample is stamped in the future
    tc0 = ctx.column("tc0")
    assert abs(tc0.mean() - 25.0) < 0.05  # around ambient
    assert 0.01 < tc0.std() < 0.2  # with noise
    tc1 = ctx.column("tc1")
    assert abs(tc1.mean() - 25.0) < 0.05  # ambient is the sim's base whatever the units
    v0 = ctx.column("v0")
    t_s = (t - t[0]) / 1e9
    expected = 2.0 * np.sin(2 * np.pi * (t_s + 0) / 0.1)
    assert np.allclose(v0, expected, atol=1e-6)
    summary = ctx.events("nidaq.summary")
    assert len(summary) == 1
    assert summary[0].metadata["samples_per_channel"] == len(t)
    assert summary[0].metadata["overruns"] == 0


def test_injected_overrun_is_an_event_counted_in_the_summary():
    adapter = make(
        "sim://?overrun_at_s=0.2&overrun_blocks=4",
        timing={"sample_rate_hz": 10_000, "block_size": 500},
    )
    ctx = Collector()
    asyncio.run(stream_for(adapter, ctx, 0.8))
    overruns = ctx.events("nidaq.overrun")
    assert len(overruns) == 1
    event = overruns[0]
    assert event.severity is EventSeverity.WARNING
    assert event.metadata["driver_samples_lost"] == 2000
    # The gap in the time base covers what was lost (the sim stalls like a late reader);
    # the restart itself may add a little more on a busy machine.
    assert 1990 <= event.metadata["samples_lost_per_channel"] <= 2000 + 5000
    t = ctx.times()
    gaps = np.diff(t)
    assert (gaps > 0).all()  # strictly increasing across the restart
    big = np.flatnonzero(gaps != 100_000)
    assert len(big) == 1  # exactly one discontinuity: the overrun
    assert gaps[big[0]] >= 1990 * 100_000
    summary = ctx.events("nidaq.summary")[0]
    assert summary.metadata["overruns"] == 1
    assert (
        summary.metadata["samples_lost_per_channel"] == event.metadata["samples_lost_per_channel"]
    )
    assert summary.severity is EventSeverity.WARNING
    assert adapter.run_summary() == summary.metadata


def test_device_loss_is_an_error_event_then_the_stream_fails():
    adapter = make("sim://?lost_at_s=0.1", timing={"sample_rate_hz": 2000, "block_size": 100})
    ctx = Collector()

    async def body() -> None:
        await adapter.open()
        await adapter.start(ctx)
        with pytest.raises(DeviceLostError, match="device loss"):
            await asyncio.wait_for(adapter.stream(ctx), 5)
        await adapter.close()

    asyncio.run(body())
    lost = ctx.events("nidaq.device_lost")
    assert len(lost) == 1
    assert lost[0].severity is EventSeverity.ERROR
    assert ctx.events("nidaq.summary")  # counts are reported even when the stream fails


def test_stop_ends_a_stream_waiting_for_a_long_block():
    # One block takes 10 s to fill; stop() must not wait for it.
    adapter = make(timing={"sample_rate_hz": 100, "block_size": 1000})
    ctx = Collector()

    async def body() -> float:
        loop = asyncio.get_running_loop()
        await adapter.open()
        await adapter.start(ctx)
        task = asyncio.ensure_future(adapter.stream(ctx))
        await asyncio.sleep(0.1)
        t0 = loop.time()
        await adapter.stop()
        await asyncio.wait_for(task, 5)
        await adapter.close()
        return loop.time() - t0

    asyncio.run(body())
    assert ctx.batches() == []
    assert ctx.events("nidaq.summary")[0].metadata["samples_per_channel"] == 0


def test_polled_mode_reads_one_sample_per_channel_on_demand():
    adapter = make(rate_hz=20)
    ctx = Collector()

    async def body() -> list:
        await adapter.open()
        await adapter.start(ctx)
        out = [await adapter.read() for _ in range(3)]
        snap = await adapter.snapshot()
        await adapter.stop()
        await adapter.close()
        return [out, snap]

    reads, snap = asyncio.run(body())
    assert all(len(r) == 1 and len(r[0]) == 1 for r in reads)
    # Every column is 1-D with one value per time (0-d scalars made the pipeline fail).
    for r in reads:
        assert np.shape(r[0].t_mono_ns) == (1,)
        assert {k: np.shape(v) for k, v in r[0].values.items()} == dict.fromkeys(
            ("tc0", "tc1", "v0"), (1,)
        )
    times = [int(r[0].t_mono_ns[0]) for r in reads]
    assert times == sorted(times)
    assert set(reads[0][0].values) == {"tc0", "tc1", "v0"}
    assert snap["latest"]["tc0"] == pytest.approx(25, abs=0.5)
    assert snap["simulated"] is True


def test_heat_flux_gauge_follows_a_run_channel():
    channels = [
        {
            "kind": "voltage",
            "physical_channel": "Dev1/ai0",
            "name": "hf",
            "min": 0,
            "max": 1,
            "sim": {"follow": "heater", "gain": 0.01, "tau_s": 0, "noise_sigma": 0, "offset": 0},
        }
    ]
    adapter = make(channels=channels, timing={"sample_rate_hz": 1000, "block_size": 100})
    ctx = Collector(latest={"heater": 40.0})
    asyncio.run(stream_for(adapter, ctx, 0.35))
    assert np.allclose(ctx.column("hf"), 0.4)


def test_commands_are_refused_not_raised():
    result = asyncio.run(make().command(__import__("capa").Command.write("tc0", 1.0)))
    assert result.accepted is False


def test_polled_device_loss_is_reported_once_then_raised():
    adapter = make("sim://?lost_at_s=0", rate_hz=50)
    ctx = Collector()

    async def body() -> list:
        await adapter.open()
        await adapter.start(ctx)
        first = await adapter.read()
        with pytest.raises(DeviceLostError):
            await adapter.read()
        await adapter.stop()
        await adapter.close()
        return list(first)

    first = asyncio.run(body())
    assert [e.kind for e in first] == ["nidaq.device_lost"]
