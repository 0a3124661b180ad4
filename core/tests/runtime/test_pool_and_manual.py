"""WorkerPool, workers and ManualClient, in-process with test adapters."""

from __future__ import annotations

import threading
import time
import typing

import anyio
import pytest

import capa
from capa.errors import ConductorStateError, DeviceError, UnknownDeviceError, WorkerStateError
from capa.runtime import (
    Conductor,
    ConductorConfig,
    ManualClient,
    RealRunSession,
    RunPlan,
    WorkerPool,
    WorkerState,
)
from capa.runtime.plan import ChannelPlan, DevicePlan

LOG: list[str] = []


class Relay(capa.Adapter):
    """A test relay: a writable field, a slow command, and an open that may fail."""

    id = "test.relay"

    class Params(capa.ConfigModel):
        fail_open: bool = False
        command_s: float = 0.0

    @classmethod
    def resource_id(cls, params):
        return "test:relay"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("state", "", writable=True)]

    async def open(self):
        if self.params.fail_open:
            raise OSError("port busy")
        LOG.append(f"open {self.name} on {threading.current_thread().name}")

    async def close(self):
        LOG.append(f"close {self.name}")

    async def read(self):
        return []

    async def command(self, command):
        time.sleep(self.params.command_s)  # noqa: ASYNC251 - a blocking driver call, on purpose
        LOG.append(f"command {self.name} {command.name} done")
        return capa.CommandResult(True, "ok")


def device(name, resource, **params):
    p = Relay.Params(**params)
    return DevicePlan(name, Relay, p, resource)


def test_open_failure_closes_opened_workers_in_reverse_and_names_the_device():
    LOG.clear()
    pool = WorkerPool([device("a", "r1"), device("b", "r2"), device("c", "r3", fail_open=True)])

    async def main():
        with pytest.raises(DeviceError, match=r"c \(r3\): could not open: OSError: port busy"):
            await pool.open()

    anyio.run(main)
    assert sorted(e for e in LOG if e.startswith("close")) == ["close a", "close b"]
    assert all(w.state is WorkerState.CLOSED for w in pool.workers)


def test_devices_on_one_resource_share_a_worker_thread():
    LOG.clear()
    pool = WorkerPool([device("a", "bus"), device("b", "bus"), device("c", "other")])
    assert len(pool.workers) == 2
    assert pool.devices_on("bus") == ["a", "b"]

    async def main():
        await pool.open()
        await pool.close()

    anyio.run(main)
    threads = {e.split(" on ")[1] for e in LOG if e.startswith("open")}
    assert threads == {"capa-worker bus", "capa-worker other"}


def test_illegal_worker_transition_raises():
    pool = WorkerPool([device("a", "r1")])
    with pytest.raises(WorkerStateError, match="closed -> armed"):
        pool.workers[0].arm(capa.RunClock(), lambda d, e: None, lambda d, e: None, lambda c: None)


def test_command_timeout_abandons_the_wait_not_the_command():
    LOG.clear()
    pool = WorkerPool([device("slow", "r1", command_s=0.5)])

    async def main():
        await pool.open()
        try:
            result = await pool.dispatch("slow", capa.Command("pulse"), timeout_s=0.05)
            assert not result.accepted
            assert "no result within 0.05 s" in result.detail
            assert "command slow pulse done" not in LOG
            await anyio.sleep(0.7)
            # The command finished on the wire even though the caller stopped waiting.
            assert "command slow pulse done" in LOG
        finally:
            await pool.close()

    anyio.run(main)


def test_manual_client_between_runs_needs_confirmation_and_unknown_device_lists_names():
    pool = WorkerPool([device("a", "r1")])
    manual = ManualClient(pool)

    async def main():
        await pool.open()
        try:
            with pytest.raises(ConductorStateError, match="needs confirmed_by"):
                await manual.dispatch("a", capa.Command("pulse"))
            result = await manual.dispatch("a", capa.Command("pulse"), confirmed_by="jd")
            assert result.accepted
            with pytest.raises(UnknownDeviceError, match="configured devices: a"):
                await manual.dispatch("z", capa.Command("pulse"), confirmed_by="jd")
        finally:
            await pool.close()

    anyio.run(main)


class Idle(capa.Procedure):
    """Waits to be stopped."""

    id = "test.idle"
    Config = capa.EmptyConfig

    async def run(self, ctx):
        await ctx.external_stop.wait()


def test_manual_client_during_a_run_goes_through_the_conductor(tmp_path):
    pool = WorkerPool([device("a", "r1")])
    plan = RunPlan(
        experiment=None,
        hardware_name="t",
        devices=pool.devices,
        channels=(ChannelPlan("relay", "a", "state", "", writable=True),),
        procedure=Idle,
        procedure_config=capa.EmptyConfig(),
    )
    session = RealRunSession(tmp_path / "runs")
    conductor = Conductor(
        plan=plan, pool=pool, session=session, config=ConductorConfig(shutdown_grace_s=1)
    )
    manual = ManualClient(pool, lambda: conductor)

    async def main():
        await pool.open()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(conductor.run)
                while conductor.state.value != "running":  # noqa: ASYNC110 - polls a state
                    await anyio.sleep(0.01)
                result = await manual.dispatch(
                    "a", capa.Command("pulse", {"ms": 5}, authorization_id="op-7")
                )
                assert result.accepted
                conductor.stop("test done")
                conductor.stop("ignored: the first reason wins")
        finally:
            await pool.close()

    anyio.run(main)
    import sqlite3

    assert conductor.state.value == "sealed"
    with sqlite3.connect(session.bundle_path / "events.sqlite") as db:
        rows = db.execute(
            "SELECT kind, source, metadata_json FROM events WHERE kind != 'conductor.loop_lag'"
        ).fetchall()
    assert rows[0][0] == "pulse"
    assert rows[0][1] == "test.relay:a"
    assert '"authorization_id": "op-7"' in rows[0][2]
    import json

    manifest = json.loads((session.bundle_path / "manifest.json").read_text())
    assert manifest["exit_reason"] == "test done"
    # After the run, the conductor refuses commands and the client falls back to the pool.
    with pytest.raises(ConductorStateError):
        anyio.run(conductor.dispatch, "a", capa.Command("pulse"))


class Writer(capa.Procedure):
    """Writes the relay channel beyond its interlock, then waits to be stopped."""

    id = "test.writer"
    Config = capa.EmptyConfig
    results: typing.ClassVar[list] = []

    async def run(self, ctx):
        Writer.results.append(await ctx.write_channel("relay", 7.0, authorization_id="proc"))
        Writer.results.append(await ctx.write_channel("relay", 3.0, authorization_id="proc"))
        await ctx.external_stop.wait()


def test_interlocks_hold_procedures_and_manual_commands_during_and_between_runs(tmp_path):
    from capa.config.safety import InterlockConfig

    LOG.clear()
    Writer.results.clear()
    pool = WorkerPool([device("a", "r1")])
    plan = RunPlan(
        experiment=None,
        hardware_name="t",
        devices=pool.devices,
        channels=(ChannelPlan("relay", "a", "state", "", writable=True),),
        procedure=Writer,
        procedure_config=capa.EmptyConfig(),
        interlocks=(InterlockConfig(channel="relay", max=5.0),),
    )
    session = RealRunSession(tmp_path / "runs")
    conductor = Conductor(
        plan=plan, pool=pool, session=session, config=ConductorConfig(shutdown_grace_s=1)
    )
    manual = ManualClient(pool, lambda: conductor, plan=plan)

    async def main():
        await pool.open()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(conductor.run)
                while len(Writer.results) < 2:  # noqa: ASYNC110 - polls the procedure
                    await anyio.sleep(0.01)
                during = await manual.dispatch("a", capa.Command.write("state", 9.0, "op-1"))
                assert not during.accepted
                assert during.detail == "interlock: relay: 9 exceeds the interlock maximum 5"
                conductor.stop("test done")
            # between runs: the client holds the same limit before the pool sees it
            between = await manual.dispatch(
                "a", capa.Command.write("state", 6.0), confirmed_by="jd"
            )
            assert not between.accepted
            assert "exceeds the interlock maximum 5" in between.detail
            ok = await manual.dispatch("a", capa.Command.write("state", 4.0), confirmed_by="jd")
            assert ok.accepted
        finally:
            await pool.close()

    anyio.run(main)
    refused, accepted = Writer.results
    assert not refused.accepted
    assert refused.detail.startswith("interlock: relay: 7 exceeds")
    assert accepted.accepted
    # the device saw exactly the permitted writes: 3 (procedure) and 4 (manual)
    assert [e for e in LOG if e.startswith("command")] == [
        "command a write done",
        "command a write done",
    ]
    import sqlite3

    with sqlite3.connect(session.bundle_path / "events.sqlite") as db:
        rows = db.execute(
            "SELECT kind, message FROM events WHERE kind = 'interlock.refused'"
        ).fetchall()
    assert len(rows) == 2  # the procedure's and the manual one, both recorded in the run
    assert all("exceeds the interlock maximum 5" in m for _, m in rows)
