"""Whole `capa run`s for issue 13: real PMs as they are, a word-order mismatch, a dead port.

- a Standard Bus PM answering Hardware ID as a PM3 does (type 0x06) and a Modbus PM set
  to High_Low both open and record;
- a Modbus PM whose word order disagrees with the params is refused at open: exit 1,
  run aborted, one line naming the setting;
- the Standard Bus controller's port is killed while its driver is idle between polls
  (its simulator process stops) and comes back: a comm_error-class event, the other
  device keeps recording, the driver reconnects, the run ends sealed.
"""

from __future__ import annotations

import itertools
import json
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from capa_watlow import stdbus
from capa_watlow.sim import ControllerModel, SimBus

STDBUS_URL = "sim://?protocol=stdbus&tau=2&setpoint=25"
MODBUS_URL = "sim://?protocol=modbus_rtu&word_order=high_low&tau=2&setpoint=25"


def rig(stdbus_port: str, modbus_word_order: str, first_protocol: str = "stdbus") -> str:
    return f"""
name = "watlow-e2e"

[[devices]]
name = "pm_stdbus"
adapter = "watlow.ezzone_pm"
[devices.params]
port = "{stdbus_port}"
protocol = "{first_protocol}"
poll_rate_hz = 10
timeout_s = 0.2
retries = 0
reconnect_max_delay_s = 0.5

[[devices]]
name = "pm_modbus"
adapter = "watlow.ezzone_pm"
[devices.params]
port = "{MODBUS_URL}"
protocol = "modbus_rtu"
word_order = "{modbus_word_order}"
poll_rate_hz = 10

[[channels]]
name = "t_std"
kind = "temperature"
unit = "degC"
source = {{ device = "pm_stdbus", field = "process_value" }}

[[channels]]
name = "t_mb"
kind = "temperature"
unit = "degC"
source = {{ device = "pm_modbus", field = "process_value" }}
"""


def experiment(duration_s: float) -> str:
    return f"""
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config:
    duration_s: {duration_s}
operator:
  id: test
sample:
  id: W-1
"""


def capa_run(tmp_path: Path, rig_text: str, duration_s: float) -> subprocess.Popen[str]:
    (tmp_path / "rig.toml").write_text(rig_text)
    (tmp_path / "exp.yaml").write_text(experiment(duration_s))
    return subprocess.Popen(
        [sys.executable, "-m", "capa", "run", str(tmp_path / "exp.yaml"),
         "--runs-root", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def start_sim_process(link: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "watlow", "sim", "--pty", str(link), "--url",
         "sim://?tau=2&setpoint=25"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "simulator process printed nothing"
    assert proc.stdout is not None
    assert "watlow simulator on" in proc.stdout.readline()
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_the_simulated_pm_answers_hardware_id_with_type_0x06():
    # The fact the run below relies on: the simulator answers 1001 as a PM3 does.
    bus = SimBus([ControllerModel(1)])
    [out] = bus.feed(stdbus.build_request(1, stdbus.ReadRequest(1001, 1)))
    [frame] = stdbus.FrameAssembler().feed(out.data)
    assert frame.data.endswith(bytes.fromhex("06 00 00 00 1c"))


def test_word_order_mismatch_is_refused_at_open_exit_1(tmp_path):
    proc = capa_run(tmp_path, rig(STDBUS_URL, "low_high"), 1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "run_status:       aborted" in out
    [reason] = [line for line in out.splitlines() if line.startswith("exit_reason:")]
    assert "pm_modbus" in reason
    assert 'set word_order = "high_low"' in reason
    assert "Traceback" not in out + err


def _recording(runs: Path) -> bool:
    """Whether the run's procedure has started (its event is in events.sqlite)."""
    for db_path in runs.glob("*/events.sqlite"):
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.5) as db:
                rows = db.execute("SELECT 1 FROM events WHERE kind = 'free_run.started'").fetchall()
        except sqlite3.Error:
            continue  # not created yet, or busy: look again
        if rows:
            return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["stdbus", "modbus_rtu"])
def test_stdbus_pm_and_high_low_modbus_pm_record_through_a_killed_port(tmp_path, protocol):
    # "pm_stdbus" is the device whose port is killed; it speaks `protocol`. The device
    # path is a symlink: first to simulator process 1, then (after 1 s of nothing) to
    # process 2, started beforehand so a slow interpreter start cannot eat the run.
    link = tmp_path / "pm_stdbus"
    first = start_sim_process(tmp_path / "first")
    second = start_sim_process(tmp_path / "second")
    link.symlink_to((tmp_path / "first").resolve())
    proc = capa_run(tmp_path, rig(str(link), "high_low", protocol), 10)
    try:
        deadline = time.monotonic() + 90
        while not _recording(tmp_path / "runs"):
            assert time.monotonic() < deadline, "the run never started recording"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.5)
        # Kill the port while the driver is between polls (it polls ~2 ms every 100 ms).
        stop(first)
        time.sleep(1.0)
        tmp = tmp_path / "link.tmp"
        tmp.symlink_to((tmp_path / "second").resolve())
        tmp.replace(link)  # the device is back
        out, err = proc.communicate(timeout=120)
    finally:
        stop(first)
        stop(second)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    [bundle] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (manifest["run_status"], manifest["bundle_status"]) == ("completed", "sealed")

    with sqlite3.connect(bundle / "events.sqlite") as db:
        events = db.execute("SELECT kind, source, message FROM events ORDER BY rowid").fetchall()
    std_events = [kind for kind, source, _ in events if "pm_stdbus" in source]
    failures = [k for k in std_events if k.startswith("comm_error.")]
    assert failures, events
    assert failures[0] == "comm_error.port_lost", events  # the idle kill: no crash
    assert "reconnected" in std_events[std_events.index(failures[0]) :], events
    assert not [kind for kind, source, _ in events if "pm_modbus" in source], events

    rows = pq.read_table(bundle / "scalars.parquet").to_pylist()
    std = [r for r in rows if r["channel"] == "t_std"]
    mb = [r for r in rows if r["channel"] == "t_mb"]
    statuses = [r["status"] for r in std]
    first_bad = statuses.index("comm_error")
    assert "ok" in statuses[first_bad:], "sampling never resumed after the port came back"
    assert all(r["status"] == "ok" for r in mb)  # the other device never stopped
    assert all(r["value"] == pytest.approx(25.0) for r in mb)  # high_low read right
    times = sorted(r["t_mono_ns"] for r in mb)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.5, f"the Modbus PM stopped recording for {max(gaps):.2f} s"
    assert len(mb) >= 50
