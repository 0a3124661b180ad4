"""A writer that stops making progress ends the run as crashed-but-sealed (exit 2)."""

from __future__ import annotations

import json
import sqlite3
import threading

import anyio
import pytest

from capa import PluginHost
from capa.bundle.writer import BundleWriter
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.headless import run_headless

from .conftest import manifest, write_experiment

pytestmark = pytest.mark.slow


def test_stalled_writer_trips_the_saturation_deadline(tmp_path, monkeypatch):
    exp = write_experiment(
        tmp_path,
        config={"duration_s": 30},
        daq_rate=2000,
        block=20,
        runtime={"saturation_deadline_s": 1.0, "shutdown_grace_s": 1},
    )
    # Stand-in for a disk that stops answering: after a few records the writer thread
    # blocks inside its write until the test releases it.
    release = threading.Event()
    accepted = 0
    original = BundleWriter._accept

    def stalling_accept(self: BundleWriter, record: object) -> None:
        nonlocal accepted
        accepted += 1
        if accepted > 20:
            release.wait(60)
            return
        original(self, record)

    monkeypatch.setattr(BundleWriter, "_accept", stalling_accept)
    # A short writer queue, so the DAQ's producer fills it and blocks within the deadline.
    monkeypatch.setattr("capa.bundle.writer.DEFAULT_QUEUE_SIZE", 64)
    host = PluginHost()
    host.load()
    report = validate_experiment(exp, host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main():
        with anyio.fail_after(30):  # the 30 s free run must end long before this
            return await run_headless(plan, runs_root=tmp_path / "runs")

    try:
        result = anyio.run(main)
    finally:
        release.set()
    assert result.exit_code() == 2
    assert result.run_status == "crashed"
    assert result.bundle_status == "sealed"
    assert result.exit_reason.startswith("saturation_deadline: writer made no progress")
    assert result.bundle_path is not None
    with sqlite3.connect(result.bundle_path / "events.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY id")]
        # Seed 003's own query: the resource whose producer was blocked on the writer
        # longest, and for how long the writer made no progress.
        rid, blocked_s, meta = db.execute(
            "SELECT json_extract(metadata_json, '$.resource_id'),"
            " json_extract(metadata_json, '$.blocked_s'), metadata_json"
            " FROM events WHERE kind = 'saturation_deadline'"
        ).fetchone()
    assert "saturation_deadline" in kinds
    # Half-way to the deadline the stall was warned about, and the warning is an event
    # although the writer never took another record (kept for the close, issue 17).
    assert "conductor.saturation_warning" in kinds
    assert kinds.index("conductor.saturation_warning") < kinds.index("saturation_deadline")
    blocked = json.loads(meta)["blocked_resources"]
    assert blocked, meta  # the 64-record queue was full: producers were waiting on it
    assert set(blocked) <= {d.resource_id for d in plan.devices}
    assert rid == max(blocked, key=blocked.get), meta
    assert blocked_s >= 1.0
    m = manifest(result.bundle_path)
    assert m["integrity"]["status"] == "ok"
    assert m["run_status"] == "crashed"
    # The writer was given up on mid-write: the accounting is bounded, not exact, and the
    # rows it never took are counted as dropped with the reason.
    acc = m["counts"]["accounting"]
    assert acc["status"] == "incomplete", acc
    reasons = {r for s in acc["devices"].values() for c in s.values() for r in c["dropped"]}
    assert reasons & {"abandoned", "writer_abandoned"}, acc
