"""`capa run` logs its start-up phases to the pre-run log (read by bench/run_startup.py)."""

from __future__ import annotations

import json

from .conftest import CapaProcess, summary, write_experiment

PHASES = [
    "run.requested",
    "run.plugins_loaded",
    "run.validated",
    "run.planned",
    "run.devices_opened",
]


def test_startup_phases_are_logged_in_order_with_wall_and_cpu_seconds(tmp_path):
    exp = write_experiment(tmp_path, config={"duration_s": 0.3})
    proc = CapaProcess(tmp_path)
    done = proc.run("run", str(exp), "--runs-root", "runs")
    assert done.returncode == 0, done.stdout + done.stderr
    (log,) = (tmp_path / "home" / ".capa" / "logs").glob("capa-*.log")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    marks = [r for r in records if r["event"] in PHASES]
    assert [r["event"] for r in marks] == PHASES
    assert {r["pid"] for r in marks} == {marks[0]["pid"]}
    walls = [r["since_main_s"] for r in marks]
    cpus = [r["cpu_s"] for r in marks]
    assert walls == sorted(walls)
    assert cpus == sorted(cpus)
    assert walls[0] >= 0
    assert cpus[0] > 0
    assert marks[0]["main_epoch"] > 0
    assert summary(done.stdout)["run_status"] == "completed"
