"""`capa run` of recipes on simulators: events, device setpoints, abort, failure (seed 002)."""

from __future__ import annotations

import itertools
import json
import signal

import pytest

from ..run.conftest import CapaProcess, manifest, summary
from .conftest import event_rows, wait_for_event, write_recipe

pytestmark = pytest.mark.slow

METHOD = """\
name = "e2e"

[[steps]]
kind = "setpoint"
target = "oven_sp"
value = 50.0

[[steps]]
kind = "ramp"
target = "oven_sp"
start_value = 50.0
end_value = 80.0
duration_s = 0.5
tick_s = 0.1

[[steps]]
kind = "hold"
target = "oven_sp"
value = 80.0
duration_s = 0.2

[[steps]]
kind = "wait"
end_condition = { channel = "oven_pv", op = ">=", value = 79.0 }
timeout_s = 20
on_timeout = "abort"

[[steps]]
kind = "prompt"
title = "Insert the sample"
message = "then acknowledge"

[[steps]]
kind = "acquire"
duration_s = 0.2

[[steps]]
kind = "safe_shutdown"
cool_target = { oven_sp = 30.0 }
duration_s = 0.2
"""

KINDS = ["setpoint", "ramp", "hold", "wait", "prompt", "acquire", "safe_shutdown"]


def _raw(value: float) -> float:
    return (value - 10.0) / 2.0  # inverse of the rig's calibration


def test_recipe_events_follow_the_method_and_device_sees_inverted_setpoints(
    capa_proc: CapaProcess,
):
    exp = write_recipe(
        capa_proc.tmp,
        METHOD,
        config={"auto_acknowledge_prompts": True, "notes": "PMMA replicate 3"},
    )
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 0, proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "completed",
        "sealed",
        "ok",
    )
    bundle = capa_proc.runs / s["run_id"]
    rows = event_rows(bundle)

    # Step lifecycle: entered/exited for every step, in method order, nothing failed.
    lifecycle = [
        (k, meta["index"], meta["kind"])
        for k, _, _, meta in rows
        if k in ("method.step.entered", "method.step.exited", "method.step.failed")
    ]
    expected = []
    for i, kind in enumerate(KINDS):
        expected += [("method.step.entered", i, kind), ("method.step.exited", i, kind)]
    assert lifecycle == expected
    entered = [meta for k, _, _, meta in rows if k == "method.step.entered"]
    assert entered[1]["target"] == "oven_sp"

    # Prompt: shown then auto-acknowledged, inside the prompt step.
    kinds = [k for k, *_ in rows]
    i_prompt = kinds.index("method.prompt.shown")
    assert kinds[i_prompt + 1] == "method.prompt.acknowledged"
    assert rows[i_prompt + 1][3]["acknowledged_by"] == "auto"

    # Every write: one method.command.issued with the audit fields, right after the
    # conductor's own record of the device command, which carries the raw value.
    issued = [(i, meta) for i, (k, _, _, meta) in enumerate(rows) if k == "method.command.issued"]
    assert issued
    for i, meta in issued:
        assert meta["accepted"] is True
        assert meta["device"] == "oven"
        assert meta["channel"] == "oven_sp"
        assert meta["issued_by"] == "procedure:capa.builtin.recipe_runner"
        assert meta["authorization_id"].startswith(s["run_id"])
        kind, _, _, device_meta = rows[i - 1]
        assert kind == "write"
        assert device_meta["args"]["field"] == "sp"
        assert device_meta["args"]["value"] == pytest.approx(_raw(meta["value"]))
        assert device_meta["authorization_id"] == meta["authorization_id"]

    by_step = {}
    for _, meta in issued:
        by_step.setdefault(meta["step_kind"], []).append(meta["value"])
    assert by_step["setpoint"] == [50.0]
    ramp = by_step["ramp"]
    assert ramp[0] == pytest.approx(50.0)
    assert ramp[-1] == 80.0
    assert all(b >= a for a, b in itertools.pairwise(ramp)), "a ramp up never goes down"
    assert len(ramp) >= 4  # 0.5 s at 0.1 s ticks
    assert by_step["hold"] == [80.0]
    assert by_step["safe_shutdown"] == [30.0]
    assert set(by_step) == {"setpoint", "ramp", "hold", "safe_shutdown"}

    # What the device reported back: its raw setpoint field ends at the inverted value.
    import pyarrow.parquet as pq

    table = pq.read_table(bundle / "scalars.parquet").to_pylist()
    sp = [r for r in table if r["channel"] == "oven_sp"]
    assert sp[-1]["value"] == pytest.approx(30.0)
    assert sp[-1]["raw_value"] == pytest.approx(_raw(30.0))
    assert any(r["raw_value"] == pytest.approx(_raw(80.0)) for r in sp)
    assert manifest(bundle)["procedure"]["id"] == "capa.builtin.recipe_runner"

    # run.log (seed 003): operator_id on every line; step_id / step_kind on the lines
    # written while a step runs, and only there.
    log = [json.loads(line) for line in (bundle / "run.log").read_text().splitlines()]
    assert log
    assert all(line["operator_id"] == "tester" for line in log)
    step_lines = [line for line in log if line["event"] == "method.step.entered"]
    assert [(line["step_id"], line["step_kind"]) for line in step_lines] == list(enumerate(KINDS))
    assert all(line["procedure_id"] == "capa.builtin.recipe_runner" for line in step_lines)
    opened = next(line for line in log if line["event"] == "bundle.opened")
    assert "step_id" not in opened
    assert manifest(bundle)["custom"]["notes"] == "PMMA replicate 3"  # seed 002


ABORT_METHOD = """\
name = "abort-me"

[[steps]]
kind = "ramp"
target = "oven_sp"
start_value = 20.0
end_value = 500.0
duration_s = 60

[[steps]]
kind = "acquire"
duration_s = 60

[[steps]]
kind = "safe_shutdown"
cool_target = { oven_sp = 25.0 }
duration_s = 30
"""


def test_sigint_mid_ramp_aborts_runs_safe_shutdown_and_seals(capa_proc: CapaProcess):
    exp = write_recipe(capa_proc.tmp, ABORT_METHOD)
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    wait_for_event(
        capa_proc, proc, "method.command.issued", where=lambda m: m.get("step_kind") == "ramp"
    )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "aborted",
        "sealed",
        "ok",
    )
    rows = event_rows(capa_proc.runs / s["run_id"])
    kinds = [k for k, *_ in rows]
    # The ramp ended early, the walk stopped, then the safe_shutdown step ran.
    ramp_exit = next(m for k, _, _, m in rows if k == "method.step.exited" and m["index"] == 0)
    assert ramp_exit["outcome"] == "stopped"
    stopped = kinds.index("method.executor.stopped")
    shutdown = kinds.index("method.safe_shutdown")
    assert stopped < shutdown
    assert rows[shutdown][3]["reason"] == "abort"
    after = rows[shutdown + 1 :]
    assert [(k, m.get("index")) for k, _, _, m in after if k.startswith("method.step.")] == [
        ("method.step.entered", 2),
        ("method.step.exited", 2),
    ]
    cool = [m for k, _, _, m in after if k == "method.command.issued"]
    assert [(m["channel"], m["value"], m["accepted"]) for m in cool] == [("oven_sp", 25.0, True)]
    # The acquire step never started.
    assert not any(k == "method.step.entered" and m["index"] == 1 for k, _, _, m in rows)
    ramp_values = [
        m["value"]
        for k, _, _, m in rows
        if k == "method.command.issued" and m["step_kind"] == "ramp"
    ]
    assert max(ramp_values) < 500.0


FAILING_METHOD = """\
name = "fails"

[[steps]]
kind = "setpoint"
target = "oven_sp"
value = 40.0

[[steps]]
kind = "wait"
end_condition = { channel = "oven_pv", op = ">", value = 1000.0 }
timeout_s = 0.3
on_timeout = "abort"

[[steps]]
kind = "setpoint"
target = "oven_sp"
value = 60.0

[[steps]]
kind = "safe_shutdown"
cool_target = { oven_sp = 20.0 }
"""


def test_failing_step_crashes_the_run_sealed_with_step_failed(capa_proc: CapaProcess):
    exp = write_recipe(capa_proc.tmp, FAILING_METHOD)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2, proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "crashed",
        "sealed",
        "ok",
    )
    assert "StepError" in s["exit_reason"]
    rows = event_rows(capa_proc.runs / s["run_id"])
    kinds = [k for k, *_ in rows]
    assert "method.wait.timeout" in kinds
    failed = [(sev, msg, m) for k, sev, msg, m in rows if k == "method.step.failed"]
    assert len(failed) == 1
    sev, msg, meta = failed[0]
    assert sev == "error"
    assert "[01] wait failed: StepError" in msg
    assert (meta["index"], meta["kind"], meta["error_type"]) == (1, "wait", "StepError")
    assert "oven_pv > 1000" in meta["error"]
    # Step 2 never ran; the safe_shutdown ran because the run crashed.
    issued = [m["value"] for k, _, _, m in rows if k == "method.command.issued"]
    assert issued == [40.0, 20.0]
    assert rows[kinds.index("method.safe_shutdown")][3]["reason"] == "crash: StepError"
    assert kinds[-1] == "procedure.crashed"
