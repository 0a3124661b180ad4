"""`capa.builtin.heat_flux_tune` end to end on a simulated heater and flux gauge."""

from __future__ import annotations

import itertools
import json
import textwrap
import tomllib
from pathlib import Path

import pytest

from ..run.conftest import CapaProcess, summary
from .conftest import event_rows

pytestmark = pytest.mark.slow

# The gauge (its own device and worker) follows the heater's process-value *channel*:
# hf_mv = 0.05 * pv - 1, calibrated to kW/m² by × 2, so flux = 0.1 * pv - 2 and the
# setpoints that give 5 and 10 kW/m² are 70 and 120.
RIG = """
name = "cone"

[[devices]]
name = "heater"
adapter = "capa.sim.signals"
[devices.params]
resource = "heater"
rate_hz = 40
writable = ["sp"]
[devices.params.signals]
sp = { kind = "constant", value = 20.0, unit = "degC" }
[devices.params.signals.pv]
kind = "follow"
source = "sp"
tau_s = 0.1
initial = 20.0
noise_sigma = 0.05
unit = "degC"

[[devices]]
name = "gauge"
adapter = "capa.sim.signals"
on_failure = "warn"
[devices.params]
resource = "gauge"
mode = "block"
sample_rate_hz = 500
block_size = 20
[devices.params.signals]
{fault}
[devices.params.signals.hf_mv]
kind = "follow"
source = "heater_pv"
gain = 0.05
offset = -1.0
tau_s = 0.05
initial = 0.0
noise_sigma = 0.005
unit = "mV"

[[channels]]
name = "heater_sp"
kind = "temperature"
unit = "degC"
source = { device = "heater", field = "sp" }

[[channels]]
name = "heater_pv"
kind = "temperature"
unit = "degC"
source = { device = "heater", field = "pv" }

[[channels]]
name = "heat_flux"
kind = "heat_flux"
unit = "mV"
derived_unit = "kW/m2"
source = { device = "gauge", field = "hf_mv" }
calibration = { kind = "linear", slope = 2.0, intercept = 0.0 }
"""

CONFIG = {
    "heater_channel": "heater_sp",
    "heater_pv_channel": "heater_pv",
    "flux_channel": "heat_flux",
    "targets_kw_m2": [5.0, 10.0],
    "initial_setpoint": 50.0,
    "setpoint_ceiling": 200.0,
    "tolerance_kw_m2": 0.15,
    "damping": 0.8,
    "max_step": 60.0,
    "window_s": 0.6,
    "dwell_s": 0.3,
    "pv_band": 1.0,
    "flux_spread_cap": 0.2,
    "flux_slope_cap": 0.5,
    "max_iterations": 10,
    "silent_gauge_s": 1.0,
    "cool_down_setpoint": 20.0,
    "artifact_dir": "tunes",
}


def _write(tmp: Path, config: dict, *, fault: str = "") -> Path:
    (tmp / "rig.toml").write_text(RIG.replace("{fault}", fault))
    (tmp / "tune.yaml").write_text(
        textwrap.dedent(
            f"""\
            hardware: rig.toml
            procedure:
              id: capa.builtin.heat_flux_tune
              config: {json.dumps(config)}
            operator: {{id: tester}}
            sample: {{id: HF-1}}
            runtime: {{shutdown_grace_s: 3}}
            """
        )
    )
    return tmp / "tune.yaml"


def test_tune_converges_for_two_targets_and_writes_the_artifact(capa_proc: CapaProcess):
    exp = _write(capa_proc.tmp, CONFIG)
    (capa_proc.tmp / "tunes").mkdir()
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "completed",
        "sealed",
        "ok",
    )
    bundle = capa_proc.runs / s["run_id"]
    rows = event_rows(bundle)
    kinds = [k for k, *_ in rows]
    assert kinds[0] == "heat_flux_tune.started"
    assert kinds[-1] == "heat_flux_tune.completed"
    accepted = [m for k, _, _, m in rows if k == "heat_flux_tune.target_accepted"]
    assert [a["target_kw_m2"] for a in accepted] == [5.0, 10.0]
    for a, expected_sp in zip(accepted, (70.0, 120.0), strict=True):
        assert abs(a["flux_mean_kw_m2"] - a["target_kw_m2"]) <= 0.15
        # The plant's answer is 70 / 120; the tolerance allows ±1.5 setpoint units.
        assert a["setpoint"] == pytest.approx(expected_sp, abs=2.0)
    iterations = [m for k, _, _, m in rows if k == "heat_flux_tune.iteration"]
    assert 2 <= len(iterations) <= 20
    writes = [m for k, _, _, m in rows if k == "heat_flux_tune.command.issued"]
    assert all(w["accepted"] and w["device"] == "heater" for w in writes)
    assert max(w["value"] for w in writes) <= 200.0
    steps = [abs(b["value"] - a["value"]) for a, b in itertools.pairwise(writes)]
    assert max(steps[:-1]) <= 60.0  # clamped per step (the last write is the cool-down)
    assert writes[-1]["value"] == 20.0
    assert writes[-1]["step_kind"] == "cool_down"

    artifacts = list((capa_proc.tmp / "tunes").glob("heat_flux_tune_cone_*.toml"))
    assert len(artifacts) == 1
    data = tomllib.loads(artifacts[0].read_text())
    assert data["tune"]["rig"] == "cone"
    assert data["tune"]["complete"] is True
    assert data["channels"] == {
        "heater": "heater_sp",
        "heater_pv": "heater_pv",
        "flux": "heat_flux",
    }
    assert [p["setpoint"] for p in data["points"]] == [a["setpoint"] for a in accepted]
    for p in data["points"]:
        assert {
            "flux_mean_kw_m2",
            "flux_std_kw_m2",
            "flux_slope_kw_m2_per_s",
            "accept_reason",
        } <= set(p)
    copy = bundle / "artifacts" / artifacts[0].name
    assert copy.read_bytes() == artifacts[0].read_bytes()
    assert f"artifacts/{artifacts[0].name}" in (bundle / "manifest.sha256").read_text()


def test_existing_artifact_is_never_overwritten(tmp_path: Path):
    from datetime import UTC, datetime

    from capa_procedures.heat_flux.artifact import write_new_file

    when = datetime(2026, 5, 24, 14, 32, tzinfo=UTC)
    first = write_new_file(tmp_path, "heat_flux_tune_rig", "a = 1\n", when)
    second = write_new_file(tmp_path, "heat_flux_tune_rig", "a = 2\n", when)
    assert first.name == "heat_flux_tune_rig_20260524T143200Z.toml"
    assert second.name == "heat_flux_tune_rig_20260524T143200Z-2.toml"
    assert first.read_text() == "a = 1\n"
    assert second.read_text() == "a = 2\n"
    assert {p.name for p in tmp_path.iterdir()} == {first.name, second.name}


def test_silent_gauge_aborts_with_a_cool_down(capa_proc: CapaProcess):
    fault = '[devices.params.fault]\nkind = "error"\nafter_s = 0.5\n'
    exp = _write(capa_proc.tmp, {**CONFIG, "targets_kw_m2": [50.0]}, fault=fault)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert s["bundle_status"] == "sealed"
    assert "silent_gauge" in s["exit_reason"]
    rows = event_rows(capa_proc.runs / s["run_id"])
    aborted = [m for k, _, _, m in rows if k == "heat_flux_tune.aborted"]
    assert [a["reason"] for a in aborted] == ["silent_gauge"]
    writes = [m for k, _, _, m in rows if k == "heat_flux_tune.command.issued"]
    assert (writes[-1]["step_kind"], writes[-1]["value"]) == ("cool_down", 20.0)


def test_runaway_flux_aborts_with_a_cool_down(capa_proc: CapaProcess):
    config = {**CONFIG, "targets_kw_m2": [8.0], "runaway_flux_kw_m2": 4.0}
    exp = _write(capa_proc.tmp, config)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs", timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert "runaway" in s["exit_reason"]
    rows = event_rows(capa_proc.runs / s["run_id"])
    assert [m["reason"] for k, _, _, m in rows if k == "heat_flux_tune.aborted"] == ["runaway"]
    writes = [m for k, _, _, m in rows if k == "heat_flux_tune.command.issued"]
    assert (writes[-1]["step_kind"], writes[-1]["value"]) == ("cool_down", 20.0)
    artifact = next((capa_proc.tmp / "tunes").glob("*.toml"))
    assert tomllib.loads(artifact.read_text())["tune"]["complete"] is False


def test_setpoint_ceiling_is_checked_before_the_run(capa_proc: CapaProcess):
    exp = _write(capa_proc.tmp, {**CONFIG, "initial_setpoint": 250.0})
    proc = capa_proc.run("validate", str(exp))
    assert proc.returncode == 2
    assert "initial_setpoint 250 is above setpoint_ceiling 200" in proc.stdout + proc.stderr
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2
    assert not capa_proc.runs.exists() or not list(capa_proc.runs.glob("2*"))


def test_preflight_refuses_a_heater_channel_that_is_not_writable(capa_proc: CapaProcess):
    exp = _write(capa_proc.tmp, {**CONFIG, "heater_channel": "heater_pv"})
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"]) == ("aborted", "none")
    assert proc.returncode == 1  # core maps a preflight refusal to aborted (seed 001)
    assert "heat_flux_tune.heater_not_writable" in s["exit_reason"]
    assert not list(capa_proc.runs.glob("2*"))  # refused before any bundle exists


def test_operator_stop_cools_down_and_aborts(capa_proc: CapaProcess):
    import signal

    from .conftest import wait_for_event

    exp = _write(capa_proc.tmp, {**CONFIG, "dwell_s": 600.0})  # never accepts by itself
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    wait_for_event(capa_proc, proc, "heat_flux_tune.holding")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"]) == ("aborted", "sealed")
    rows = event_rows(capa_proc.runs / s["run_id"])
    assert [m["reason"] for k, _, _, m in rows if k == "heat_flux_tune.aborted"] == [
        "external_stop"
    ]
    writes = [m for k, _, _, m in rows if k == "heat_flux_tune.command.issued"]
    assert [(w["step_kind"], w["value"]) for w in writes] == [
        ("iteration", 50.0),
        ("cool_down", 20.0),
    ]
    assert "heat_flux_tune.completed" not in [k for k, *_ in rows]


def test_operator_skips_targets_with_capa_prompt_tune(capa_proc: CapaProcess):
    """Seed 003 ``heat_flux_tune.operator_command``: an operator's command, recorded."""
    from .conftest import wait_for_event

    exp = _write(capa_proc.tmp, {**CONFIG, "dwell_s": 600.0})  # never accepts by itself
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    bundle = wait_for_event(capa_proc, proc, "heat_flux_tune.holding")
    run_id = bundle.name
    # A command the tuner does not know (written by hand, not by the CLI) is recorded as
    # ignored, and the tune goes on.
    tmp = bundle / ".tune.command.json.tmp"  # whole or nothing, as the CLI writes it
    tmp.write_text('{"command": "pause", "by": "bob"}')
    tmp.replace(bundle / "tune.command.json")
    wait_for_event(
        capa_proc, proc, "heat_flux_tune.operator_command", where=lambda m: m["by"] == "bob"
    )
    sent = capa_proc.run("prompt", "tune", run_id, "skip", "--runs-root", "runs", "--by", "alice")
    assert sent.returncode == 0, sent.stderr
    assert "target 5.0 kW/m², iteration 1" in sent.stdout
    wait_for_event(
        capa_proc, proc, "heat_flux_tune.holding", where=lambda m: m["target_kw_m2"] == 10.0
    )
    sent = capa_proc.run("prompt", "tune", run_id, "skip", "--runs-root", "runs")
    assert sent.returncode == 0, sent.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"]) == ("completed", "sealed")
    rows = event_rows(bundle)
    commands = [(sev, m) for k, sev, _, m in rows if k == "heat_flux_tune.operator_command"]
    assert [(m["command"], m["outcome"], m["target_kw_m2"]) for _, m in commands] == [
        ("pause", "ignored", 5.0),
        ("skip", "skipped", 5.0),
        ("skip", "skipped", 10.0),
    ]
    assert [sev for sev, _ in commands] == ["warning", "info", "info"]
    assert commands[1][1]["by"] == "alice"
    assert commands[2][1]["by"]  # the login name by default
    kinds = [k for k, *_ in rows]
    assert "heat_flux_tune.target_accepted" not in kinds
    completed = next(m for k, _, _, m in rows if k == "heat_flux_tune.completed")
    assert [x["target_kw_m2"] for x in completed["skipped"]] == [5.0, 10.0]
    artifact = next((capa_proc.tmp / "tunes").glob("*.toml"))
    data = tomllib.loads(artifact.read_text())
    assert data["tune"]["complete"] is False
    assert data["tune"]["end_reason"] == "completed_with_skipped"
    assert [x["by"] for x in data["skipped"]] == ["alice", commands[2][1]["by"]]
    # The command files are gone before the seal; a sealed run takes no commands.
    assert not list(bundle.glob("tune.*.json"))
    assert "tune.pending" not in (bundle / "manifest.sha256").read_text()
    assert "tune.command" not in (bundle / "manifest.sha256").read_text()
    late = capa_proc.run("prompt", "tune", run_id, "skip", "--runs-root", "runs")
    assert late.returncode == 2
    assert late.stderr.strip() == f"capa: error: run {run_id} is sealed; it has no prompt waiting"


def test_prompt_tune_refuses_a_run_without_a_tune(capa_proc: CapaProcess):
    (capa_proc.runs / "20260101T000000-aaaa").mkdir(parents=True)
    proc = capa_proc.run("prompt", "tune", "20260101T000000-aaaa", "skip", "--runs-root", "runs")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "capa: error: run 20260101T000000-aaaa has no heat-flux tune waiting for commands"
    )
    bad = capa_proc.run("prompt", "tune", "20260101T000000-aaaa", "accept", "--runs-root", "runs")
    # An unknown command is a usage error (click's 2 today; seed 001's 64 is another
    # change), and nothing is written for the tune to read.
    assert bad.returncode in (2, 64)
    assert "'accept'" in bad.stderr
    assert not list((capa_proc.runs / "20260101T000000-aaaa").iterdir())
