"""`capa run` end to end, as a subprocess: every outcome and its exit code (seed 001)."""

from __future__ import annotations

import signal
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest

from capa.testing import make_distribution

from .conftest import CapaProcess, events, manifest, samples_table, summary, write_experiment

pytestmark = pytest.mark.slow

CRASHING = '''
import anyio
import capa


class Crash(capa.Procedure):
    """Raises after a short while."""

    id = "test.crash"
    Config = capa.EmptyConfig

    async def run(self, ctx):
        await anyio.sleep(0.5)
        raise RuntimeError("the specimen caught fire")


@capa.hookimpl
def capa_register_procedures():
    return [Crash]
'''


def test_completed_run_is_sealed_with_every_sample(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, config={"duration_s": 2}, rate_hz=20, daq_rate=1000)
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 0, proc.stderr
    s = summary(proc.stdout)
    assert s["run_status"] == "completed"
    assert s["bundle_status"] == "sealed"
    assert s["integrity_status"] == "ok"
    assert s["exit_reason"] == ""
    bundle = capa_proc.runs / s["run_id"]
    assert s["bundle"] == str(bundle)

    table = pq.read_table(bundle / "scalars.parquet")
    counts = dict.fromkeys(("oven_sp", "oven_pv"), 0)
    for name in table.column("channel").to_pylist():
        counts[name] += 1  # a KeyError here: a block channel landed in scalars
    assert 30 <= counts["oven_pv"] <= 50  # ~20 Hz polled for 2 s
    t = table.column("t_mono_ns").to_numpy()
    assert (t[1:] >= t[:-1]).all(), "scalars.parquet is sorted by t_mono_ns"
    # The block device is recorded wide: one row per tick, a column per channel.
    wide = samples_table(bundle, "daq")
    counts["v0"] = len(wide) - wide.column("v0").null_count
    counts["v1"] = len(wide) - wide.column("v1").null_count
    # Its samples are exact multiples of its block; 2 s at 1 kS/s.
    assert counts["v0"] == counts["v1"] == len(wide)
    assert counts["v0"] % 100 == 0
    assert 1800 <= counts["v0"] <= 2200
    tw = wide.column("t_mono_ns").to_numpy()
    assert (np.diff(tw) == 1_000_000).all(), "one row per 1 kS/s tick, in order"

    m = manifest(bundle)
    assert m["counts"]["scalars"]["channels"] == {
        "oven_sp": counts["oven_sp"],
        "oven_pv": counts["oven_pv"],
    }
    assert m["counts"]["accounting"]["devices"]["daq"]["samples/daq"]["written"] == len(wide)
    assert m["procedure"]["id"] == "capa.builtin.free_run"
    assert m["operator"]["id"] == "tester"
    assert m["queue_health"]["runtime"]["loop_lag"]["beats"] > 0
    # Seed 004: the engine revision and the flat runtime-diagnostics snapshot.
    from capa.runtime import RUNTIME_VERSION

    assert m["capa"]["runtime_version"] == RUNTIME_VERSION
    assert m["capa"]["engine_version"] == RUNTIME_VERSION  # seed 004's name
    assert m["capa"]["version"]
    qh = m["queue_health"]
    assert qh["loop.conductor"]["samples"] > 0
    assert qh["loop.conductor"]["lag_max_ms"] >= qh["loop.conductor"]["lag_p50_ms"] >= 0
    assert {k for k in qh if k.startswith(("bridge.outbound:", "worker:"))} == {
        "bridge.outbound:sim:oven",
        "bridge.outbound:sim:daq",
        "worker:sim:oven",
        "worker:sim:daq",
    }
    # Every v0 sample went through the DAQ worker's hand-off; none failed or is pending.
    daq, bridge = qh["worker:sim:daq"], qh["bridge.outbound:sim:daq"]
    assert daq["samples_emitted"] == counts["v0"]
    assert bridge["enqueued_total"] == daq["emissions_total"] > 0
    assert bridge["dropped_total"] == 0
    assert bridge["blocked_since_ms"] == -1.0
    assert bridge["latency_p99_ms"] >= bridge["latency_p50_ms"] > 0
    assert daq["last_sample_age_s"] >= 0
    kinds = [k for k, _, _ in events(bundle)]
    assert kinds == ["free_run.started", "free_run.ended"]
    log_lines = (bundle / "run.log").read_text().splitlines()
    assert log_lines
    assert all(f'"run_id": "{s["run_id"]}"' in line for line in log_lines)
    assert sorted(p.name for p in (bundle / "config").iterdir()) == ["experiment.yaml", "rig.toml"]
    with sqlite3.connect(capa_proc.runs / "runs.sqlite") as db:
        row = db.execute(
            "SELECT run_status, bundle_status FROM runs WHERE run_id = ?", (s["run_id"],)
        ).fetchone()
    assert row == ("completed", "sealed")


def test_sigint_once_aborts_gracefully_and_seals(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, config={})
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    bundle = capa_proc.wait_for_rows(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "SIGINT received — initiating graceful stop (Ctrl-C again to force)" in err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "aborted",
        "sealed",
        "ok",
    )
    assert s["exit_reason"] == "operator_stop"
    assert (bundle / "manifest.sha256").exists()
    assert [k for k, _, _ in events(bundle)][-1] == "free_run.ended"
    assert "external_stop" in events(bundle)[-1][2]


def test_sigterm_is_treated_like_the_first_ctrl_c(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, config={})
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    capa_proc.wait_for_rows(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "SIGTERM received" in err
    s = summary(out)
    assert (s["run_status"], s["bundle_status"]) == ("aborted", "sealed")


def test_second_sigint_exits_130_and_finalize_recovers(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, config={}, daq_rate=5000, block=500)
    # Hold the graceful stop in DRAINING (seed 000's CAPA_DRAINING_DELAY_S) so the second
    # Ctrl-C deterministically arrives while the first is being handled.
    capa_proc.env["CAPA_DRAINING_DELAY_S"] = "30"
    proc = capa_proc.start("run", str(exp), "--runs-root", "runs")
    bundle = capa_proc.wait_for_rows(proc)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    lines = [proc.stderr.readline() for _ in range(2)]  # a blank line, then the message
    assert "SIGINT received" in lines[1], lines
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run_status" not in out
    assert not (bundle / "manifest.sha256").exists(), "a forced exit must not seal"
    assert manifest(bundle)["bundle_status"] == "open"
    assert (capa_proc.runs / ".runtime-active.json").exists()

    # The next run in this runs root finds the dead run's checkpoint, marks it crashed
    # and tells the operator how to recover it.
    del capa_proc.env["CAPA_DRAINING_DELAY_S"]
    quick = write_experiment(capa_proc.tmp, config={"duration_s": 0})
    nxt = capa_proc.run("run", str(quick), "--runs-root", "runs")
    assert nxt.returncode == 0, nxt.stderr
    assert f"capa: warning: run {bundle.name} crashed" in nxt.stderr
    assert f"capa finalize {bundle.name}" in nxt.stderr
    assert manifest(bundle)["run_status"] == "crashed"

    fin = capa_proc.run("finalize", bundle.name, "--runs-root", "runs")
    assert fin.returncode == 0, fin.stdout + fin.stderr
    m = manifest(bundle)
    assert (m["run_status"], m["bundle_status"], m["integrity"]["status"]) == (
        "crashed",
        "sealed",
        "ok",
    )
    assert pq.read_table(bundle / "scalars.parquet").num_rows > 0


def test_procedure_that_raises_crashes_but_seals(tmp_path, capa_site):
    make_distribution(
        capa_site,
        "crash-capa",
        files={"crash_plugin.py": CRASHING},
        entry_points={"capa": {"crash": "crash_plugin"}},
    )
    capa = CapaProcess(tmp_path, site=capa_site)
    exp = write_experiment(tmp_path, procedure="test.crash")
    proc = capa.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2, proc.stderr
    s = summary(proc.stdout)
    assert (s["run_status"], s["bundle_status"], s["integrity_status"]) == (
        "crashed",
        "sealed",
        "ok",
    )
    assert s["exit_reason"] == "procedure: RuntimeError: the specimen caught fire"
    (crash,) = [e for e in events(capa.runs / s["run_id"]) if e[0] == "procedure.crashed"]
    assert crash[1] == "error"


def test_config_error_exits_2_and_writes_nothing(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, config={"duration_s": "soon"})
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 2
    assert "duration_s" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not capa_proc.runs.exists() or not any(capa_proc.runs.iterdir())


def test_unknown_procedure_exits_1_and_writes_nothing(capa_proc: CapaProcess):
    exp = write_experiment(capa_proc.tmp, procedure="capa.builtin.free_rum")
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 1, proc.stderr
    s = summary(proc.stdout)
    assert s["run_status"] == "aborted"
    assert s["exit_reason"].startswith("procedure_resolution: ")
    assert "capa.builtin.free_run" in s["exit_reason"]  # the available ids are listed
    assert not capa_proc.runs.exists() or not any(capa_proc.runs.iterdir())


def test_missing_config_file_is_one_line_exit_2(capa_proc: CapaProcess):
    proc = capa_proc.run("run", "nowhere.yaml", "--runs-root", "runs")
    assert proc.returncode == 2
    assert "nowhere.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_free_run_refuses_a_method_at_preflight(capa_proc: CapaProcess):
    (capa_proc.tmp / "m.method.toml").write_text('name = "m"\n')
    exp = write_experiment(
        capa_proc.tmp, config={"duration_s": 1}, extra_yaml="method: m.method.toml\n"
    )
    proc = capa_proc.run("run", str(exp), "--runs-root", "runs")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = summary(proc.stdout)
    assert s["exit_reason"].startswith("preflight: ")
    assert "free_run.method_not_supported" in s["exit_reason"]
    assert not capa_proc.runs.exists() or not any(p.is_dir() for p in capa_proc.runs.iterdir())


def test_sigint_is_never_lost_when_the_parent_ignored_it(capa_proc: CapaProcess):
    # Found by bench/fuzz_configs.py: a background job (`capa run ... &`, nohup) inherits
    # SIGINT ignored; a Ctrl-C before the run's handler was installed was dropped and the
    # free run recorded forever. Now the CLI takes SIGINT over first thing.
    import os
    import subprocess
    import sys
    import time

    exp = write_experiment(capa_proc.tmp)  # a free run: it only ends when stopped
    home = capa_proc.tmp / "home"
    env = {**os.environ, "HOME": str(home)}
    env.pop("CAPA_PLUGIN_MODE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "run", str(exp), "--runs-root", "runs"],
        cwd=capa_proc.tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
    )
    try:
        # The pre-run log is opened once `capa run` is under way (after the CLI took over
        # SIGINT): signal then, before the run's own handler exists.
        deadline = time.monotonic() + 60
        while not list((home / ".capa" / "logs").glob("*.log")):
            assert time.monotonic() < deadline, "capa run never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out + err
    assert summary(out)["run_status"] == "aborted"
    assert "Traceback" not in err
