"""A real run of the demo rig (shortened recipe), written once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "demo"

# The demo recipe in seconds: every step kind the demo uses, on the same four simulated
# devices (Watlow and Sartorius over their wire protocols, the NI-DAQ at 1 kS/s, a camera).
SHORT_METHOD = """\
name = "report-demo"
description = "The demo recipe, shortened for the report tests."

[[steps]]
kind = "setpoint"
target = "furnace_sp"
value = 40.0
notes = "preheat"

[[steps]]
kind = "ramp"
target = "furnace_sp"
end_value = 60.0
rate_per_second = 10.0

[[steps]]
kind = "hold"
target = "furnace_sp"
value = 60.0
duration_s = 2.0

[[steps]]
kind = "prompt"
title = "Specimen"
message = "Insert the specimen."
timeout_s = 30.0

[[steps]]
kind = "acquire"
duration_s = 2.0

[[steps]]
kind = "safe_shutdown"
cool_target = { furnace_sp = 25.0 }
"""

SHORT_RECIPE = """\
hardware: rig.toml
method: recipe.method.toml
procedure:
  id: capa.builtin.recipe_runner
  config:
    auto_acknowledge_prompts: true
    notes: report test
operator:
  id: tester
sample:
  id: REPORT-001
  material: PMMA
tags: [report]
runtime:
  shutdown_grace_s: 5
"""


@dataclass(frozen=True)
class DemoRun:
    """A sealed demo run."""

    runs_root: Path
    run_id: str

    @property
    def bundle(self) -> Path:
        return self.runs_root / self.run_id


def capa_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``capa ARGS`` in a subprocess (as a user types it), with the test's interpreter."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CAPA_PLUGIN_MODE", None)  # dev mode: every installed plugin loads
    return subprocess.run(
        [sys.executable, "-m", "capa", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    work = tmp_path_factory.mktemp("report-demo")
    shutil.copy(EXAMPLES / "rig.toml", work / "rig.toml")
    shutil.copy(EXAMPLES / "signals_rig.toml", work / "signals_rig.toml")
    (work / "recipe.method.toml").write_text(SHORT_METHOD)
    (work / "recipe.yaml").write_text(SHORT_RECIPE)
    runs = work / "runs"
    done = capa_cli("run", "recipe.yaml", "--runs-root", str(runs), cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = next(
        line.split(":", 1)[1].strip()
        for line in done.stdout.splitlines()
        if line.startswith("run_id:")
    )
    return DemoRun(runs, run_id)
