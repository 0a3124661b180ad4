"""Abandoning a stuck writer (the saturation deadline's escalation path)."""

import sqlite3
import threading

import pyarrow.parquet as pq
import pytest

from capa import EventRecord, EventSeverity
from capa.bundle.catalog import Catalog
from capa.bundle.finalize import finalize_bundle
from capa.bundle.integrity import verify_bundle
from capa.bundle.manifest import read_manifest
from capa.bundle.recovery import read_active
from capa.errors import BundleError


def _stuck_writer(open_writer, make_rows):
    """A writer whose first 10 rows are durable and whose thread then hangs."""
    writer = open_writer()
    flushed = threading.Event()
    real_flush = writer._safe_flush

    def flush_and_tell():
        real_flush()
        if writer.metrics().rows_durable >= 10:
            flushed.set()

    writer._safe_flush = flush_and_tell
    writer.submit(make_rows(0, 10))
    assert flushed.wait(5)

    gate = threading.Event()
    taken = threading.Event()
    real_accept = writer._accept

    def hang(record):
        taken.set()
        gate.wait()  # the disk stopped answering
        real_accept(record)

    writer._accept = hang
    writer.submit(make_rows(10, 10))  # taken by the thread, which hangs on it
    assert taken.wait(5)
    writer.submit(make_rows(20, 10))  # these two stay queued
    writer.submit(make_rows(30, 10))
    return writer, gate


def test_abandon_records_the_outcome_and_finalize_keeps_what_reached_disk(
    open_writer, make_rows, runs_root
):
    writer, gate = _stuck_writer(open_writer, make_rows)
    late = EventRecord(1, "t", "saturation_deadline", EventSeverity.ERROR, "conductor", "stuck")
    try:
        writer.abandon(
            "crashed",
            "saturation_deadline: writer stalled",
            late_events=[late],
            join_timeout_s=0.05,
        )
        m = read_manifest(writer.bundle)
        assert (m.run_status.value, m.bundle_status.value) == ("crashed", "open")
        assert m.exit_reason == "saturation_deadline: writer stalled"
        assert m.queue_health["abandoned"] is True
        assert m.counts["dropped"]["by_reason"] == {"abandoned": 20}
        assert read_active(runs_root) is None
        row = Catalog(runs_root).get(writer.run_id)
        assert row is not None
        assert row.run_status == "crashed"
        with pytest.raises(BundleError, match="closed"):
            writer.submit(make_rows(40, 1))
        assert writer.close() is None  # already given up on

        result = finalize_bundle(writer.bundle)
        assert result.ok
        times = pq.read_table(writer.bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
        assert times == list(range(10))
        # Abandoned mid-write: bounded (the stuck batch is neither written nor dropped).
        acc = result.manifest.counts["accounting"]
        assert acc["status"] == "incomplete"
        assert acc["devices"][""]["scalars"]["dropped"] == {"abandoned": 20}
        assert acc["files"]["scalars"] == {"rows_in_file": 10, "written": 10}
        assert acc["lost"] == {":scalars": 10}
        conn = sqlite3.connect(writer.bundle / "events.sqlite")
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
        conn.close()
        assert kinds == ["saturation_deadline", "bundle.writer_abandoned"]
    finally:
        gate.set()  # the disk comes back ...
        writer._thread.join(5)
    # ... and the released thread wrote nothing into the sealed bundle
    assert not writer._thread.is_alive()
    assert verify_bundle(writer.bundle).ok
    assert not list(writer.bundle.rglob("*.in-flight.arrows"))


def test_late_events_survive_a_locked_event_log(open_writer, make_rows):
    writer, gate = _stuck_writer(open_writer, make_rows)
    # Something holds the write lock on events.sqlite (a thread stuck inside an SQLite
    # write): the writer's own inserts commit at once, so take the lock explicitly.
    blocker = sqlite3.connect(writer.bundle / "events.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    late = EventRecord(3, "t", "saturation_deadline", EventSeverity.ERROR, "conductor", "stuck")
    try:
        import capa.bundle.abandon as writer_module

        real_append = writer_module.append_events
        writer_module.append_events = lambda path, events: real_append(path, events, 0.05)
        try:
            writer.abandon(
                "crashed", "saturation_deadline", late_events=[late], join_timeout_s=0.05
            )
        finally:
            writer_module.append_events = real_append
        custom = read_manifest(writer.bundle).custom
        assert [e["kind"] for e in custom["late_events"]] == [
            "saturation_deadline",
            "bundle.writer_abandoned",
        ]
    finally:
        blocker.rollback()
        blocker.close()
        gate.set()
        writer._thread.join(5)
    result = finalize_bundle(writer.bundle)
    assert result.ok
    assert result.manifest.counts["events"] == 0  # the uncommitted row was rolled back
