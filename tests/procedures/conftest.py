"""Helpers for capa-procedures end-to-end tests: a calibrated simulated rig and methods."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from ..run.conftest import CapaProcess

# The oven's setpoint channel is calibrated (value = 2 * raw + 10), so a method value of
# 50 must reach the simulated device as 20: the tests check the inversion end to end.
RIG = """
name = "proc-rig"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
rate_hz = 50
writable = ["sp"]
[devices.params.signals]
sp = { kind = "constant", value = 10.0, unit = "V" }
pv = { kind = "follow", source = "sp", tau_s = 0.1, initial = 10.0, unit = "V" }

[[channels]]
name = "oven_sp"
kind = "temperature"
unit = "V"
derived_unit = "degC"
source = { device = "oven", field = "sp" }
calibration = { kind = "linear", slope = 2.0, intercept = 10.0 }
keep_raw = true

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "V"
derived_unit = "degC"
source = { device = "oven", field = "pv" }
calibration = { kind = "linear", slope = 2.0, intercept = 10.0 }
"""


def write_recipe(
    tmp: Path,
    method: str,
    *,
    config: dict | None = None,
    procedure: str = "capa.builtin.recipe_runner",
    rig: str = RIG,
    grace_s: float = 3,
) -> Path:
    """Write rig.toml, test.method.toml and recipe.yaml into ``tmp``; return the experiment."""
    (tmp / "rig.toml").write_text(rig)
    (tmp / "test.method.toml").write_text(textwrap.dedent(method))
    cfg = json.dumps(config if config is not None else {"auto_acknowledge_prompts": True})
    (tmp / "recipe.yaml").write_text(
        textwrap.dedent(
            f"""\
            hardware: rig.toml
            method: test.method.toml
            procedure:
              id: {procedure}
              config: {cfg}
            operator: {{id: tester}}
            sample: {{id: S-1}}
            runtime: {{shutdown_grace_s: {grace_s}}}
            """
        )
    )
    return tmp / "recipe.yaml"


def event_rows(bundle: Path) -> list[tuple[str, str, str, dict]]:
    """``(kind, severity, message, metadata)`` in order."""
    # Closed explicitly: an open reader would hold a lock while the run finalizes.
    with closing(sqlite3.connect(bundle / "events.sqlite", timeout=5)) as db:
        # Without the watchdogs' loop-lag / stall warnings: a loaded machine may add them.
        rows = db.execute(
            "SELECT kind, severity, message, metadata_json FROM events"
            " WHERE kind NOT IN ('conductor.loop_lag', 'conductor.saturation_warning')"
            " ORDER BY id"
        ).fetchall()
    return [(k, s, m, json.loads(meta) if meta else {}) for k, s, m, meta in rows]


def wait_for_event(
    capa_proc: CapaProcess, proc, kind: str, *, where=None, timeout: float = 30
) -> Path:
    """Poll the running bundle's events.sqlite until an event of ``kind`` appears."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for bundle in capa_proc.runs.glob("2*"):
            if not (bundle / "events.sqlite").exists():
                continue
            try:
                rows = event_rows(bundle)
            except sqlite3.Error:
                continue
            if any(k == kind and (where is None or where(meta)) for k, _, _, meta in rows):
                return bundle
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event in time")


@pytest.fixture
def capa_proc(tmp_path: Path) -> CapaProcess:
    return CapaProcess(tmp_path)
