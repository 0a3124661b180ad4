"""The safety monitor with fake run services: alarms act, watchdogs trip, interlocks refuse."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

import capa
from capa.clock import RunClock
from capa.config.safety import AlarmConfig, InterlockConfig
from capa.runtime.plan import ChannelPlan, DevicePlan
from capa.runtime.safety import SafetyMonitor, safe_targets_of


class Heater(capa.Adapter):
    """Minimal adapter class for DevicePlan (never opened here)."""

    id = "test.heater"
    Params = capa.EmptyConfig


def services():
    calls = {"events": [], "stops": [], "writes": []}

    def emit(kind, message, *, severity, source, metadata):
        calls["events"].append((kind, severity, message, metadata))

    def stop(reason):
        calls["stops"].append(reason)

    async def write_channel(channel, value, *, authorization_id=None):
        calls["writes"].append((channel, value, authorization_id))
        return capa.CommandResult(True, "ok")

    return calls, emit, stop, write_channel


CHANNELS = [
    ChannelPlan(name="furnace_t", device="furnace", field="pv", unit="degC"),
    ChannelPlan(name="furnace_sp", device="furnace", field="sp", unit="degC", writable=True),
]


def monitor(alarms=(), interlocks=(), devices=(), targets=None):
    calls, emit, stop, write = services()
    mon = SafetyMonitor(
        alarms=list(alarms),
        interlocks=list(interlocks),
        channels=CHANNELS,
        devices=list(devices),
        safe_targets=targets if targets is not None else {"furnace_sp": 25.0},
        clock=RunClock(),
        emit=emit,
        stop=stop,
        write_channel=write,
    )
    return mon, calls


async def until(predicate, limit_s=5.0):
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_safe_shutdown_alarm_writes_targets_then_stops_then_records():
    mon, calls = monitor(
        alarms=[
            AlarmConfig(
                name="overtemp",
                channel="furnace_t",
                high=600,
                hysteresis=10,
                action="safe_shutdown",
                severity="critical",
            )
        ]
    )
    assert mon.watches("furnace_t")
    assert not mon.watches("furnace_sp")

    async def scenario():
        task = asyncio.create_task(mon.run())
        await asyncio.sleep(0.05)
        now = mon._clock.now_ns()
        # the pipeline calls observe() on a worker thread
        worker = threading.Thread(
            target=mon.observe, args=("furnace_t", np.array([now, now + 1000]), [590.0, 612.5])
        )
        worker.start()
        worker.join()
        await until(lambda: calls["events"])
        mon.observe("furnace_t", np.array([now + 2000]), [580.0])  # below 600 - 10: clears
        await until(lambda: len(calls["events"]) == 2)
        task.cancel()

    asyncio.run(scenario())
    assert calls["writes"] == [("furnace_sp", 25.0, "safety:alarm:overtemp")]
    assert len(calls["stops"]) == 1
    assert calls["stops"][0].startswith("alarm: overtemp: furnace_t = 612.5 > 600 (high)")
    raised, cleared = calls["events"]
    assert raised[0] == "alarm.raised"
    assert raised[1] == "error"
    assert raised[3]["severity"] == "critical"
    assert raised[3]["channel"] == "furnace_t"
    assert raised[3]["value"] == 612.5
    assert raised[3]["limit"] == 600
    assert raised[3]["safe_targets"] == {"furnace_sp": "ok"}
    assert raised[3]["reaction_ms"] >= 0
    assert cleared[0] == "alarm.cleared"
    assert mon.summary()["alarms_raised"] == {"overtemp": 1}


def test_warn_alarm_only_records():
    mon, calls = monitor(alarms=[AlarmConfig(name="low", channel="furnace_t", low=10)])

    async def scenario():
        task = asyncio.create_task(mon.run())
        await asyncio.sleep(0.02)
        mon.observe("furnace_t", np.array([mon._clock.now_ns()]), [5.0])
        await until(lambda: calls["events"])
        task.cancel()

    asyncio.run(scenario())
    assert calls["stops"] == []
    assert calls["writes"] == []
    assert calls["events"][0][0] == "alarm.raised"


def test_stale_channel_and_watchdog_trip():
    device = DevicePlan(
        name="furnace",
        adapter=Heater,
        params=capa.EmptyConfig(),
        resource_id="sim:furnace",
        on_failure="abort",
        watchdog_s=0.2,
    )
    mon, calls = monitor(
        alarms=[AlarmConfig(name="quiet", channel="furnace_t", stale_s=0.15)], devices=[device]
    )

    async def scenario():
        task = asyncio.create_task(mon.run())
        await until(lambda: len(calls["events"]) >= 2)
        task.cancel()

    asyncio.run(scenario())
    kinds = sorted(e[0] for e in calls["events"])
    assert kinds == ["alarm.raised", "watchdog.tripped"]
    assert any("watchdog: device furnace" in s for s in calls["stops"])
    assert mon.summary()["watchdog_trips"] == {"furnace": 1}
    assert calls["writes"] == []  # abort, not safe_shutdown: no targets written


def test_interlocks_hold_every_verb():
    device = DevicePlan(
        name="furnace", adapter=Heater, params=capa.EmptyConfig(), resource_id="sim:furnace"
    )
    mon, _ = monitor(interlocks=[InterlockConfig(channel="furnace_sp", max=900)])
    latest = {"furnace_sp": 25.0}.get
    assert mon.check_command(device, capa.Command.write("sp", 850), latest) is None
    refusal = mon.check_command(device, capa.Command.write("sp", 950), latest)
    assert refusal == "furnace_sp: 950 exceeds the interlock maximum 900"
    # a command that writes no interlocked field passes; so does a verb the adapter
    # does not map to a field (the default adapter knows only `write`)
    assert mon.check_command(device, capa.Command.write("other", 5000), latest) is None
    assert mon.check_command(device, capa.Command("tare"), latest) is None
    assert mon.summary()["interlock_refusals"] == 1


def test_safe_targets_come_from_the_steps():
    class Plain:
        def safe_targets(self):
            return {}

    class Shutdown:
        def safe_targets(self):
            return {"furnace_sp": 30.0}

    assert safe_targets_of([Plain(), Shutdown(), object()]) == {"furnace_sp": 30.0}
