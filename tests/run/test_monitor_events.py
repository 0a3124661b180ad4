"""Loop-lag warnings reach events.sqlite as well as run.log (issue 17)."""

from __future__ import annotations

import json

import anyio

import capa
from capa import PluginHost
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.headless import run_headless

from .conftest import write_experiment


def test_loop_lag_warnings_are_events(tmp_path):
    # A limit of 1 us: practically every 50 ms heartbeat wakes later than that.
    exp = write_experiment(
        tmp_path, config={"duration_s": 1.0}, runtime={"loop_lag_warn_ms": 0.001}
    )
    host = PluginHost()
    host.load()
    report = validate_experiment(exp, host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main():
        with anyio.fail_after(60):
            return await run_headless(plan, runs_root=tmp_path / "runs")

    result = anyio.run(main)
    assert result.exit_code() == 0
    bundle = capa.open_bundle(result.bundle_path)
    lag = bundle.events("conductor.loop_lag").to_pylist()
    warned = bundle.manifest["queue_health"]["runtime"]["loop_lag"]["warnings"]
    assert warned >= 1
    # the first five in full, then every 100th
    assert len(lag) == min(warned, 5) + warned // 100
    assert {e["severity"] for e in lag} == {"warning"}
    assert json.loads(lag[0]["metadata"])["warn_ms"] == 0.001
    logged = [
        json.loads(line)
        for line in (result.bundle_path / "run.log").read_text().splitlines()
        if '"conductor.loop_lag"' in line
    ]
    assert len(logged) == min(warned, 5)
