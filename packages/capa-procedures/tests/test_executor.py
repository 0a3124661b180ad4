"""The method executor and step kinds, in process against a fake run context."""

from __future__ import annotations

import anyio
import pytest

from capa_procedures.errors import StepError
from capa_procedures.executor import MethodExecutor
from capa_procedures.recipe_runner import RecipeRunner, RecipeRunnerConfig

from .fakes import FakeChannels, FakeRun, make_steps

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _run(*specs, values=None, **kw) -> FakeRun:
    channels = FakeChannels(values or {"sp": 10.0, "pv": 10.0})
    return FakeRun(steps=make_steps(*specs), channels=channels, writable={"sp"}, **kw)


def _lifecycle(run: FakeRun) -> list[tuple[str, int]]:
    return [
        (k.rsplit(".", 1)[1], m["index"])
        for k, _, _, m in run.events.rows
        if k.startswith("method.step.")
    ]


async def test_advance_until_interleaves_and_run_all_finishes():
    run = _run(
        {"kind": "setpoint", "target": "sp", "value": 1},
        {"kind": "setpoint", "target": "sp", "value": 2},
        {"kind": "setpoint", "target": "sp", "value": 3},
    )
    ex = MethodExecutor(run, issued_by="test")
    await ex.advance_until(2)
    assert [w[1] for w in run.writes] == [1, 2]
    assert ex.next_index == 2
    assert not ex.finished
    await ex.run_all()
    assert [w[1] for w in run.writes] == [1, 2, 3]
    assert ex.finished
    assert _lifecycle(run) == [
        ("entered", 0), ("exited", 0), ("entered", 1), ("exited", 1), ("entered", 2), ("exited", 2)
    ]  # fmt: skip
    issued = [m for k, _, _, m in run.events.rows if k == "method.command.issued"]
    assert [(m["value"], m["step_kind"], m["issued_by"]) for m in issued] == [
        (1.0, "setpoint", "test"),
        (2.0, "setpoint", "test"),
        (3.0, "setpoint", "test"),
    ]
    assert run.progress["step"] == "3/3 setpoint"
    assert [w[2] for w in run.writes] == [f"{run.run_id}:method:0{i}" for i in range(3)]


async def test_ramp_starts_from_latest_and_ends_exactly():
    run = _run(
        {"kind": "ramp", "target": "sp", "end_value": 12.0, "duration_s": 0.2, "tick_s": 0.05}
    )
    await MethodExecutor(run).run_all()
    values = [w[1] for w in run.writes]
    assert values[0] == pytest.approx(10.0, abs=0.5)
    assert values[-1] == 12.0
    assert values == sorted(values)


async def test_ramp_after_a_setpoint_starts_from_it_before_the_device_is_resampled():
    run = _run(
        {"kind": "setpoint", "target": "sp", "value": 50.0},
        {"kind": "ramp", "target": "sp", "end_value": 60.0, "duration_s": 0.2, "tick_s": 0.05},
    )
    run.writes_show_up = False  # the channel still reads 10 (the last poll)
    await MethodExecutor(run).run_all()
    values = [w[1] for w in run.writes]
    assert values[0] == 50.0
    assert values[1] == pytest.approx(50.0, abs=3.0)  # not from the stale 10
    assert values[-1] == 60.0


async def test_ramp_waits_for_the_first_value_of_a_device_that_has_not_answered_yet():
    run = _run({"kind": "ramp", "target": "sp", "end_value": 12.0, "duration_s": 0.1,
                "tick_s": 0.05}, values={"sp": None})  # fmt: skip

    async def first_poll() -> None:
        await anyio.sleep(0.3)
        run.channels.values["sp"] = 11.0  # the device's first answer

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_poll)
        await MethodExecutor(run).run_all()
    values = [w[1] for w in run.writes]
    assert values[0] == pytest.approx(11.0, abs=0.5)  # from the late first value
    assert values[-1] == 12.0


async def test_ramp_without_start_or_latest_value_fails_the_step():
    run = _run({"kind": "ramp", "target": "sp", "end_value": 12.0, "rate_per_second": 1.0,
                "first_value_timeout_s": 0.2}, values={"sp": None})  # fmt: skip
    with pytest.raises(StepError, match="no start_value"):
        await MethodExecutor(run).run_all()
    failed = [m for k, _, _, m in run.events.rows if k == "method.step.failed"]
    assert failed[0]["kind"] == "ramp"
    assert failed[0]["target"] == "sp"


async def test_stop_during_a_ramp_ends_the_walk_without_error():
    run = _run(
        {"kind": "ramp", "target": "sp", "end_value": 1000.0, "duration_s": 3600},
        {"kind": "setpoint", "target": "sp", "value": 5},
    )

    def stop_after_three(channel, value):
        if len(run.writes) == 3:
            run.external_stop.set()

    run.on_write = stop_after_three
    ex = MethodExecutor(run)
    await ex.run_all()  # returns: a stop is not an error
    assert ex.stopped_at == 0
    assert len(run.writes) == 3
    assert run.events.kinds()[-2:] == ["method.step.exited", "method.executor.stopped"]
    assert run.events.rows[-2][3]["outcome"] == "stopped"


async def test_refused_setpoint_fails_the_step():
    run = _run({"kind": "setpoint", "target": "sp", "value": 3}, refuse={"sp"})
    with pytest.raises(StepError, match="refused"):
        await MethodExecutor(run).run_all()
    issued = [m for k, _, _, m in run.events.rows if k == "method.command.issued"]
    assert issued[0]["accepted"] is False


async def test_wait_timeout_warn_goes_on_and_safe_shutdown_ends_the_method():
    run = _run(
        {"kind": "wait", "end_condition": {"channel": "pv", "op": ">", "value": 99},
         "timeout_s": 0.05, "on_timeout": "warn"},
        {"kind": "wait", "end_condition": {"channel": "pv", "op": ">", "value": 99},
         "timeout_s": 0.05, "on_timeout": "safe_shutdown"},
        {"kind": "setpoint", "target": "sp", "value": 70},
        {"kind": "safe_shutdown", "cool_target": {"sp": 20, "missing": 1}},
    )  # fmt: skip
    ex = MethodExecutor(run)
    await ex.run_all()
    timeouts = [
        (s, m["on_timeout"]) for k, s, _, m in run.events.rows if k == "method.wait.timeout"
    ]
    assert timeouts == [("warning", "warn"), ("error", "safe_shutdown")]
    assert [w[1] for w in run.writes] == [20]  # step 2 skipped, shutdown ran
    assert ex.safe_shutdown_done
    assert ex.finished
    failed = [m for k, _, _, m in run.events.rows if k == "method.safe_shutdown.target_failed"]
    assert [m["channel"] for m in failed] == ["missing"]


async def test_wait_condition_met_by_a_later_value():
    run = _run({"kind": "wait", "end_condition": {"channel": "pv", "op": ">=", "value": 50},
                "timeout_s": 5, "on_timeout": "abort"})  # fmt: skip

    async def heat():
        await anyio.sleep(0.05)
        run.channels.values["pv"] = 55.0

    async with anyio.create_task_group() as tg:
        tg.start_soon(heat)
        await MethodExecutor(run).run_all()
    assert "method.wait.timeout" not in run.events.kinds()


async def test_recipe_runner_runs_safe_shutdown_on_crash_and_reraises():
    run = _run(
        {"kind": "wait", "end_condition": {"channel": "pv", "op": ">", "value": 99},
         "timeout_s": 0.05, "on_timeout": "abort"},
        {"kind": "safe_shutdown", "cool_target": {"sp": 20}},
    )  # fmt: skip
    runner = RecipeRunner(RecipeRunnerConfig())
    with pytest.raises(StepError):
        await runner.run(run)
    kinds = run.events.kinds()
    assert kinds.index("method.step.failed") < kinds.index("method.safe_shutdown")
    assert [w[1] for w in run.writes] == [20]


async def test_recipe_runner_can_skip_safe_shutdown_on_abort():
    run = _run(
        {"kind": "acquire", "duration_s": 10},
        {"kind": "safe_shutdown", "cool_target": {"sp": 20}},
    )
    run.external_stop.set()
    await RecipeRunner(RecipeRunnerConfig(safe_shutdown_on_abort=False)).run(run)
    assert run.writes == []
    assert run.events.kinds() == ["method.executor.stopped"]


async def test_prompt_auto_acknowledged():
    run = _run({"kind": "prompt", "title": "Go?"})
    await MethodExecutor(run, auto_acknowledge_prompts=True).run_all()
    assert [k for k in run.events.kinds() if k.startswith("method.prompt")] == [
        "method.prompt.shown",
        "method.prompt.acknowledged",
    ]


async def test_prompt_acknowledged_through_the_bundle_file(tmp_path):
    from capa_procedures.prompt_files import ACK_FILE, PENDING_FILE, read_json, write_json_atomic

    run = _run({"kind": "prompt", "title": "Go?", "timeout_s": 10}, bundle_path=tmp_path)

    async def operator():
        # Polls the file, as `capa prompt ack` would find the prompt shown.
        while read_json(tmp_path / PENDING_FILE) is None:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        write_json_atomic(tmp_path / ACK_FILE, {"step": 0, "by": "bob"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        await MethodExecutor(run).run_all()
    acked = [m for k, _, _, m in run.events.rows if k == "method.prompt.acknowledged"]
    assert acked[0]["acknowledged_by"] == "bob"
    assert list(tmp_path.iterdir()) == []


async def test_stop_ends_a_wait_on_a_subscribed_channel():
    class Silent:
        async def get(self):
            await anyio.sleep_forever()

        def drain(self):
            return []

    class SubscribingChannels(FakeChannels):
        unsubscribed = False

        def subscribe(self, names, maxlen):
            return Silent()

        def unsubscribe(self, sub):
            SubscribingChannels.unsubscribed = True

    run = FakeRun(
        steps=make_steps(
            {"kind": "wait", "end_condition": {"channel": "pv", "op": ">", "value": 99}}
        ),
        channels=SubscribingChannels({"pv": 1.0}),
    )
    async with anyio.create_task_group() as tg:

        async def stop_soon():
            await anyio.sleep(0.05)
            run.external_stop.set()

        tg.start_soon(stop_soon)
        ex = MethodExecutor(run)
        await ex.run_all()
    assert ex.stopped_at == 0
    assert SubscribingChannels.unsubscribed
    assert "method.wait.timeout" not in run.events.kinds()
