"""Safety monitor and derived channels in real `capa run`s on a simulated furnace."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq
import pytest

from ..run.conftest import summary
from .conftest import event_rows

pytestmark = pytest.mark.slow

RIG = """
name = "furnace-rig"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
rate_hz = 50
writable = ["sp"]
[devices.params.signals]
sp = { kind = "constant", value = 25.0, unit = "degC" }
pv = { kind = "follow", source = "sp", tau_s = 0.2, initial = 25.0, unit = "degC" }

[[channels]]
name = "oven_sp"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "sp" }

[[channels]]
name = "oven_t"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "pv" }
"""


def write(tmp, method: str, *, extra_rig: str = "", extra_exp: str = "") -> object:
    (tmp / "rig.toml").write_text(RIG + textwrap.dedent(extra_rig))
    (tmp / "m.method.toml").write_text(textwrap.dedent(method))
    (tmp / "exp.yaml").write_text(
        textwrap.dedent(
            """\
            hardware: rig.toml
            method: m.method.toml
            procedure: {id: capa.builtin.recipe_runner, config: {auto_acknowledge_prompts: true}}
            operator: {id: tester}
            sample: {id: S-1}
            runtime: {shutdown_grace_s: 3}
            """
        )
        + textwrap.dedent(extra_exp)
    )
    return tmp / "exp.yaml"


def samples(bundle, channel):
    rows = pq.read_table(bundle / "scalars.parquet").to_pylist()
    return [
        (r["t_mono_ns"], r["value"], r["source_field"]) for r in rows if r["channel"] == channel
    ]


def test_overshoot_is_shut_down_safely_by_the_monitor(capa_proc):
    exp = write(
        capa_proc.tmp,
        """
        name = "overshoot"
        [[steps]]
        kind = "ramp"
        target = "oven_sp"
        end_value = 300.0
        rate_per_second = 100.0
        [[steps]]
        kind = "hold"
        target = "oven_sp"
        value = 300.0
        duration_s = 10
        [[steps]]
        kind = "safe_shutdown"
        cool_target = { oven_sp = 20.0 }
        """,
        extra_rig="""
        [[alarms]]
        name = "overtemp"
        channel = "oven_t"
        high = 120.0
        hysteresis = 5.0
        severity = "critical"
        action = "safe_shutdown"
        """,
    )
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert s["run_status"] == "aborted"
    assert s["bundle_status"] == "sealed"
    assert s["exit_reason"].startswith("alarm: overtemp: oven_t = ")
    bundle = capa_proc.runs / s["run_id"]
    events = event_rows(bundle)
    raised = [e for e in events if e[0] == "alarm.raised"]
    assert len(raised) == 1
    _kind, severity, _message, meta = raised[0]
    assert severity == "error"
    assert meta["severity"] == "critical"
    assert meta["channel"] == "oven_t"
    assert meta["limit"] == 120.0
    assert meta["value"] > 120.0
    assert meta["action"] == "safe_shutdown"
    assert meta["safe_targets"] == {"oven_sp": "ok"}
    # The monitor wrote the safe target itself, before the procedure's own shutdown.
    safety_writes = [e for e in events if e[3].get("authorization_id") == "safety:alarm:overtemp"]
    assert safety_writes, [e[0] for e in events]
    assert safety_writes[0][3]["args"] == {"field": "sp", "value": 20.0}
    assert safety_writes[0][3]["accepted"] is True
    # ... and it came before the recipe's own safe_shutdown step ran
    kinds = [e[0] for e in events]
    assert events.index(safety_writes[0]) < kinds.index("method.safe_shutdown")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["counts"]["safety"]["alarms_raised"] == {"overtemp": 1}
    assert manifest["counts"]["safety"]["safe_shutdown_reaction_ms"][0] < 1000


def test_interlocked_set_point_is_refused_from_a_method(capa_proc):
    exp = write(
        capa_proc.tmp,
        """
        name = "too hot"
        [[steps]]
        kind = "setpoint"
        target = "oven_sp"
        value = 950.0
        """,
        extra_rig="""
        [[interlocks]]
        channel = "oven_sp"
        max = 900.0
        """,
    )
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    s = summary(proc.stdout)
    bundle = capa_proc.runs / s["run_id"]
    events = event_rows(bundle)
    refused = [e for e in events if e[0] == "interlock.refused"]
    assert len(refused) == 1
    assert "950 exceeds the interlock maximum 900" in refused[0][2]
    assert refused[0][3]["device"] == "oven"
    # the device never saw the value
    assert all(v <= 900 for _, v, _ in samples(bundle, "oven_sp"))
    assert s["run_status"] == "crashed"  # the recipe's step failed on the refusal
    assert "interlock" in s["exit_reason"]


def test_a_derived_channel_is_recorded_and_drives_a_wait(capa_proc):
    exp = write(
        capa_proc.tmp,
        """
        name = "derived wait"
        [[steps]]
        kind = "setpoint"
        target = "oven_sp"
        value = 60.0
        [[steps]]
        kind = "wait"
        end_condition = { channel = "rise", op = ">=", value = 30.0 }
        timeout_s = 20
        on_timeout = "abort"
        """,
        extra_rig="""
        [[derived]]
        name = "rise"
        expression = "oven_t - ambient"
        constants = { ambient = 25.0 }
        unit = "degC"
        plot_group = "temperature"

        [[derived]]
        name = "rise_avg"
        expression = "movavg(oven_t, 5) - ambient"
        constants = { ambient = 25.0 }
        unit = "degC"
        """,
    )
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    bundle = capa_proc.runs / s["run_id"]
    rise = samples(bundle, "rise")
    t = {ts: v for ts, v, _ in samples(bundle, "oven_t")}
    assert rise, "derived channel not recorded"
    assert {src for _, _, src in rise} == {"derived"}
    for ts, value, _ in rise:
        assert value == pytest.approx(t[ts] - 25.0)
    assert max(v for _, v, _ in rise) >= 30.0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["recording"]["derived"]["rise"]["expression"] == "oven_t - ambient"
    assert manifest["recording"]["derived"]["rise"]["inputs"] == ["oven_t"]
    assert manifest["counts"]["accounting"]["status"] == "ok"
    waits = [e for e in event_rows(bundle) if e[0] == "method.step.exited"]
    assert len(waits) == 2
