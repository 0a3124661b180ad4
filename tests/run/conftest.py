"""Helpers for end-to-end `capa run` tests: write small rigs, run capa as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RIG = """
name = "test-rig"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
rate_hz = {rate_hz}
writable = ["sp"]
[devices.params.signals]
sp = {{ kind = "constant", value = 25.0, unit = "degC" }}
pv = {{ kind = "follow", source = "sp", tau_s = 0.5, initial = 20.0, unit = "degC" }}

[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
resource = "daq"
mode = "block"
sample_rate_hz = {daq_rate}
block_size = {block}
[devices.params.signals]
{daq_signals}

[[channels]]
name = "oven_sp"
kind = "temperature"
unit = "degC"
source = {{ device = "oven", field = "sp" }}

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = {{ device = "oven", field = "pv" }}
{daq_channels}
"""


def write_experiment(
    tmp: Path,
    *,
    procedure: str = "capa.builtin.free_run",
    config: dict | None = None,
    rate_hz: float = 20,
    daq_rate: float = 1000,
    block: int = 100,
    daq_channels: int = 2,
    extra_yaml: str = "",
    extra_devices: str = "",
    runtime: dict | None = None,
) -> Path:
    signals = "\n".join(
        f'ch{i} = {{ kind = "sine", unit = "V", amplitude = 1.0, period_s = {i + 1} }}'
        for i in range(daq_channels)
    )
    channels = "\n".join(
        f'[[channels]]\nname = "v{i}"\nkind = "voltage"\nunit = "V"\n'
        f'source = {{ device = "daq", field = "ch{i}" }}\n'
        for i in range(daq_channels)
    )
    rig = RIG.format(
        rate_hz=rate_hz, daq_rate=daq_rate, block=block, daq_signals=signals, daq_channels=channels
    )
    (tmp / "rig.toml").write_text(rig + extra_devices)
    cfg = json.dumps(config or {})
    rt = json.dumps({"shutdown_grace_s": 2, **(runtime or {})})
    (tmp / "experiment.yaml").write_text(
        textwrap.dedent(
            f"""\
            hardware: rig.toml
            procedure:
              id: {procedure}
              config: {cfg}
            operator: {{id: tester}}
            sample: {{id: S-1}}
            runtime: {rt}
            """
        )
        + extra_yaml
    )
    return tmp / "experiment.yaml"


class CapaProcess:
    """`capa run` in a subprocess, with a private HOME and runs root."""

    def __init__(self, tmp: Path, site: Path | None = None) -> None:
        self.tmp = tmp
        self.runs = tmp / "runs"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAPA_")}
        self.env["HOME"] = str(tmp / "home")
        if site is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(site), self.env.get("PYTHONPATH")])
            )

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "capa", *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.tmp,
        )

    def wait_for_rows(self, proc: subprocess.Popen[str], timeout: float = 30) -> Path:
        """Wait until the run's bundle exists and has recorded some data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            bundles = [p for p in self.runs.glob("2*") if p.is_dir()]
            if bundles:
                inflight = bundles[0] / "scalars.in-flight.arrows"
                if inflight.exists() and inflight.stat().st_size > 4096:
                    return bundles[0]
            time.sleep(0.05)
        raise AssertionError("run did not start recording in time")

    def signal(self, proc: subprocess.Popen[str], sig: signal.Signals) -> None:
        proc.send_signal(sig)


def summary(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in {
            "run_id",
            "bundle",
            "run_status",
            "bundle_status",
            "integrity_status",
            "exit_reason",
        }:
            out[key] = value.strip()
    return out


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


WATCHDOG_KINDS = ("conductor.loop_lag", "conductor.saturation_warning")
"""The conductor's health warnings: any run on a loaded machine may have them."""


def events(bundle: Path, *, watchdogs: bool = False) -> list[tuple[str, str, str]]:
    """``(kind, severity, message)`` in order; without the watchdogs' warnings unless asked."""
    with sqlite3.connect(bundle / "events.sqlite") as db:
        rows = db.execute("SELECT kind, severity, message FROM events ORDER BY id").fetchall()
    return [r for r in rows if watchdogs or r[0] not in WATCHDOG_KINDS]


@pytest.fixture
def capa_proc(tmp_path: Path) -> CapaProcess:
    return CapaProcess(tmp_path)
