"""The manifest's clock anchor: taken bracketed from the run clock, used by the reader."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import capa
from capa.bundle.writer import BundleWriter
from capa.clock import RunClock


def test_anchor_is_bracketed_by_the_readings_around_it():
    mono_before, wall_before = time.monotonic_ns(), time.time_ns()
    clock = RunClock()
    wall_after, mono_after = time.time_ns(), time.monotonic_ns()
    anchor = clock.anchor()
    assert mono_before <= anchor["monotonic_origin_ns"] <= mono_after
    utc = datetime.fromisoformat(anchor["utc_at_zero"])
    assert utc.tzinfo is not None
    utc_ns = round(utc.timestamp() * 1e6) * 1000
    assert wall_before - 1000 <= utc_ns <= wall_after
    assert "bracket" in anchor["method"]
    assert f"within {clock.anchor_uncertainty_ns} ns" in anchor["method"]
    assert clock.started_utc == utc


def test_writer_records_the_anchor_and_the_reader_uses_it(tmp_path):
    clock = RunClock()
    writer = BundleWriter.open(tmp_path, clock=clock, use_catalog=False, flush_interval_s=0.05)
    writer.emit("test.mark", "now")
    assert writer.close("completed").ok
    b = capa.open_bundle(writer.bundle)
    assert b.manifest["clock"] == clock.anchor()
    assert b.utc_at_zero == clock.started_utc
    (event,) = b.events("test.mark").to_pylist()
    # the event's own wall-clock stamp and the one computed from the anchor agree
    computed = b.t_utc(event["t_mono_ns"])
    stamped = datetime.fromisoformat(event["t_utc"])
    assert abs((computed - stamped).total_seconds()) < 1.0
    assert computed.tzinfo == UTC
