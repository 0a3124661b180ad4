import json
import sqlite3
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capa import DeviceRecords, EventRecord, FrameReceipt, ScalarRows
from capa.bundle.catalog import Catalog
from capa.bundle.manifest import read_manifest
from capa.bundle.paths import RUN_ID_PATTERN
from capa.bundle.recovery import read_active
from capa.bundle.schema import scalar_batch
from capa.errors import BundleError


def test_full_run_produces_a_sealed_bundle_of_plain_files(open_writer, make_rows, runs_root):
    writer = open_writer(
        manifest_fields={
            "operator": {"id": "ada"},
            "sample": {"id": "PMMA-1"},
            "procedure": {"id": "capa.builtin.free_run", "version": "0.1.0"},
            "tags": ["smoke"],
            "custom": {"note": "x"},
        },
        config_files={"experiment.yaml": b"procedure: x\n", "rig.toml": b"name='r'\n"},
    )
    assert RUN_ID_PATTERN.match(writer.run_id)
    for i in range(10):
        writer.submit(make_rows(i * 100, 100, channel=f"ch{i % 2}"))
    writer.submit(DeviceRecords("watlow", {"t_mono_ns": [1, 2], "pv": [20.5, 20.6]}))
    writer.submit(FrameReceipt(0, 10, "2026-01-01T00:00:00+00:00", 0.002, device="cam0"))
    writer.emit("test.hello", "hi", severity="warning", source="test:t", metadata={"k": 1})
    writer.bind_log(step_id="s1").info("step.note", detail="x")
    result = writer.close("completed")

    bundle = writer.bundle
    assert result.ok
    names = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert names == [
        "config/experiment.yaml",
        "config/rig.toml",
        "device_records/watlow.parquet",
        "events.sqlite",
        "manifest.json",
        "manifest.sha256",
        "run.log",
        "scalars.parquet",
        "video/cam0.frames.parquet",
    ]
    m = read_manifest(bundle)
    assert (m.run_status.value, m.bundle_status.value, m.integrity.status.value) == (
        "completed",
        "sealed",
        "ok",
    )
    assert m.operator == {"id": "ada"}
    assert m.counts["scalars"] == {"rows": 1000, "channels": {"ch0": 500, "ch1": 500}}
    assert m.counts["device_records"] == {"watlow": 2}
    assert m.counts["frames"] == {"cam0": 1}
    assert m.counts["events"] == 1
    assert m.queue_health["rows"] == 1003
    assert m.queue_health["queue_capacity"] == 1024
    assert m.ended_utc
    assert (bundle / "config/rig.toml").read_bytes() == b"name='r'\n"

    table = pq.read_table(bundle / "scalars.parquet")
    assert table.column("t_mono_ns").to_pylist() == list(range(1000))
    assert (
        pq.ParquetFile(bundle / "scalars.parquet").metadata.row_group(0).column(0).compression
        == "ZSTD"
    )

    lines = [json.loads(line) for line in (bundle / "run.log").read_text().splitlines()]
    assert lines
    assert all(line["run_id"] == writer.run_id for line in lines)
    assert {"bundle.opened", "step.note", "bundle.closing"} <= {line["event"] for line in lines}
    assert next(line for line in lines if line["event"] == "step.note")["step_id"] == "s1"
    assert {line["level"] for line in lines} <= {"DEBUG", "INFO", "WARNING", "ERROR"}

    conn = sqlite3.connect(bundle / "events.sqlite")
    assert conn.execute("SELECT kind, severity, metadata_json FROM events").fetchall() == [
        ("test.hello", "warning", '{"k": 1}')
    ]
    conn.close()

    row = Catalog(runs_root).get(writer.run_id)
    assert row is not None
    assert (row.run_status, row.bundle_status, row.integrity_status) == (
        "completed",
        "sealed",
        "ok",
    )
    assert (row.operator, row.sample, row.procedure_id) == (
        "ada",
        "PMMA-1",
        "capa.builtin.free_run",
    )
    assert read_active(runs_root) is None


def test_catalog_row_and_checkpoint_exist_while_recording(open_writer, runs_root):
    writer = open_writer()
    row = Catalog(runs_root).get(writer.run_id)
    assert row is not None
    assert (row.run_status, row.bundle_status) == ("running", "open")
    active = read_active(runs_root)
    assert active is not None
    assert active.run_id == writer.run_id
    assert active.bundle_path == str(writer.bundle.resolve())
    writer.close("aborted", "operator stop")
    m = read_manifest(writer.bundle)
    assert (m.run_status.value, m.exit_reason) == ("aborted", "operator stop")


def test_unsorted_rows_are_sorted_in_parquet(open_writer):
    writer = open_writer()
    writer.submit(ScalarRows(scalar_batch([5, 1, 3], "a", [5.0, 1.0, 3.0])))
    writer.submit(ScalarRows(scalar_batch([0, 4, 2], "b", [0.0, 4.0, 2.0])))
    writer.close()
    table = pq.read_table(writer.bundle / "scalars.parquet")
    assert table.column("t_mono_ns").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert table.column("channel").to_pylist() == ["b", "a", "b", "a", "b", "a"]
    assert table.column("value").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_device_schema_change_is_an_error_event_not_corruption(open_writer):
    writer = open_writer()
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [1], "mass": [1.5]}))
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [2], "mass": ["heavy"]}))
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [3], "mass": ["heavy"]}))
    writer.submit(DeviceRecords("bal", pa.record_batch({"t_mono_ns": [4], "mass": [2.5]})))
    result = writer.close()
    assert result.ok
    table = pq.read_table(writer.bundle / "device_records/bal.parquet")
    assert table.to_pydict() == {"t_mono_ns": [1, 4], "mass": [1.5, 2.5]}
    conn = sqlite3.connect(writer.bundle / "events.sqlite")
    events = conn.execute("SELECT kind, severity, source, message FROM events").fetchall()
    conn.close()
    assert len(events) == 1  # one event per kind of problem, not per batch
    kind, severity, source, message = events[0]
    assert (kind, severity, source) == ("bundle.record_rejected", "error", "capa.bundle")
    assert "mass: double" in message
    assert "mass: string" in message
    assert result.manifest.counts["dropped"] == {"rows": 2, "by_reason": {"rejected": 2}}


def test_bad_scalars_are_rejected_and_counted(open_writer, make_rows):
    writer = open_writer()
    writer.submit(make_rows(0, 5))
    writer.submit(ScalarRows(pa.record_batch({"t_mono_ns": [9], "oops": [1]})))
    result = writer.close()
    assert result.manifest.counts["scalars"]["rows"] == 5
    assert result.manifest.counts["dropped"]["rows"] == 1


def test_submit_validates_and_refuses_after_close(open_writer, make_rows):
    writer = open_writer()
    with pytest.raises(BundleError, match="severity"):
        writer.submit(EventRecord(0, "t", "k", "debug", "s", "m"))  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="not a run record"):
        writer.submit("text")  # type: ignore[arg-type]
    # a family name that would escape device_records/ is rejected on the writer thread
    writer.submit(DeviceRecords("../evil", {"a": [1]}))
    first = writer.close()
    assert first is not None
    assert first.manifest.counts["dropped"]["rows"] == 1
    assert not (writer.bundle.parent / "evil.in-flight.arrows").exists()
    assert not (writer.bundle / "evil.parquet").exists()
    assert writer.close() is first  # idempotent
    with pytest.raises(BundleError, match="closed"):
        writer.submit(make_rows(0, 1))


def test_backpressure_blocks_producers_and_metrics_show_it(open_writer, make_rows):
    writer = open_writer(queue_size=2)
    gate = threading.Event()
    real_accept = writer._accept

    def slow_accept(record):
        gate.wait()
        real_accept(record)

    writer._accept = slow_accept  # the disk is stuck
    writer.submit(make_rows(0, 10))  # taken by the writer thread, which then blocks
    writer.submit(make_rows(10, 10))
    writer.submit(make_rows(20, 10))
    with pytest.raises(BundleError, match="queue stayed full"):
        writer.submit(make_rows(30, 10), timeout=0.05)
    assert writer.try_submit(make_rows(30, 10)) is False  # never blocks
    m = writer.metrics()
    assert m.queue_depth == 2
    assert m.queue_high_water == 2
    assert m.queue_capacity == 2
    assert m.rows == 0
    gate.set()
    result = writer.close()
    assert result.manifest.counts["scalars"]["rows"] == 30
    assert result.manifest.queue_health["queue_high_water"] == 2
    after = writer.metrics()
    assert after.rows == 30
    assert after.rows_durable == 30
    assert after.last_accept_mono_ns is not None
    assert after.flushes >= 1


def test_open_refuses_existing_bundle_and_bad_options(open_writer, runs_root):
    (runs_root / "20260101T000000-abcd").mkdir()
    (runs_root / "20260101T000000-abcd" / "x").write_text("x")
    with pytest.raises(BundleError, match="already exists"):
        open_writer(run_id="20260101T000000-abcd")
    with pytest.raises(BundleError, match="flush_interval_s"):
        open_writer(flush_interval_s=0)
    with pytest.raises(BundleError, match="config file name"):
        open_writer(config_files={"../x": b""})


def test_second_writer_in_the_same_runs_root_is_refused(open_writer):
    writer = open_writer()
    with pytest.raises(BundleError, match="still recording"):
        open_writer()
    writer.close()


def test_context_manager_marks_crash(open_writer, make_rows, runs_root):
    from capa.bundle.writer import BundleWriter

    def run() -> BundleWriter:
        with BundleWriter.open(runs_root, flush_interval_s=0.05) as w:
            w.submit(make_rows(0, 3))
            procedure_raises(w)
        return w

    def procedure_raises(w: BundleWriter) -> None:
        bundles.append(w.bundle)
        raise RuntimeError("procedure blew up")

    bundles: list = []
    with pytest.raises(RuntimeError, match="blew up"):
        run()
    m = read_manifest(bundles[0])
    assert (m.run_status.value, m.bundle_status.value) == ("crashed", "sealed")
    assert "procedure blew up" in m.exit_reason


def test_io_failure_stops_the_writer_but_close_still_records_the_run(open_writer, make_rows):
    writer = open_writer()
    real_write = writer._files.scalars.write
    real_fail = writer._fail
    failed = threading.Event()
    calls = [0]

    def disk_full_on_second_batch(batch):
        calls[0] += 1
        if calls[0] >= 2:
            raise OSError(28, "No space left on device")
        real_write(batch)

    def fail_and_tell(exc):
        real_fail(exc)
        failed.set()

    writer._files.scalars.write = disk_full_on_second_batch
    writer._fail = fail_and_tell
    writer.submit(make_rows(0, 10))
    writer.submit(make_rows(10, 10))
    assert failed.wait(5)
    with pytest.raises(BundleError, match="No space left"):
        writer.submit(make_rows(20, 1))
    result = writer.close("completed")
    assert result is not None
    m = result.manifest
    assert "No space left on device" in m.exit_reason
    assert m.queue_health["error"].startswith("OSError")
    assert m.counts["dropped"]["by_reason"]["writer_failed"] >= 10
    assert m.counts["scalars"]["rows"] == 10  # what reached disk before the failure
    # Every row submitted is accounted for: written, or dropped because the writer failed.
    acc = m.counts["accounting"]
    assert acc["status"] == "ok", acc
    assert acc["devices"][""]["scalars"] == {
        "emitted": 20,
        "written": 10,
        "dropped": {"writer_failed": 10},
    }


def test_malformed_records_are_rejected_without_stopping_the_writer(open_writer, make_rows):
    writer = open_writer()
    writer.submit(ScalarRows(pa.record_batch({"t_mono_ns": [1], "channel": ["a"], "value": ["x"]})))
    null_channel = scalar_batch([1, 2], pa.array(["a", None]), [1.0, 2.0])
    writer.submit(ScalarRows(null_channel))
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [1, 2], "mass": [1.0]}))
    writer.submit(FrameReceipt("zero", 1, "t", 0.1, device="cam0"))  # type: ignore[arg-type]
    writer.submit(make_rows(0, 5))
    result = writer.close()
    assert result is not None
    assert result.ok
    m = result.manifest
    assert m.queue_health["error"] is None
    assert m.counts["scalars"]["rows"] == 5
    # The malformed device record claims 2 rows (its first column): counted, not 0.
    assert m.counts["dropped"]["by_reason"] == {"rejected": 1 + 2 + 2 + 1}
    accounting = m.counts["accounting"]
    assert accounting["status"] == "ok"
    assert accounting["devices"][""]["scalars"] == {
        "emitted": 1 + 2 + 5,
        "written": 5,
        "dropped": {"rejected": 3},
    }
    assert "frames" not in m.counts
    conn = sqlite3.connect(writer.bundle / "events.sqlite")
    messages = [r[0] for r in conn.execute("SELECT message FROM events")]
    conn.close()
    assert any("cannot be cast" in msg for msg in messages)
    assert any("malformed" in msg for msg in messages)


def test_device_records_from_tables_including_empty_ones(open_writer):
    writer = open_writer()
    table = pa.table({"t_mono_ns": pa.chunked_array([[1], [2]]), "mass": [1.0, 2.0]})
    writer.submit(DeviceRecords("bal", table))
    writer.submit(DeviceRecords("bal", table.slice(0, 0)))
    result = writer.close()
    assert result is not None
    assert result.manifest.counts["device_records"] == {"bal": 2}
    assert result.manifest.counts["dropped"]["rows"] == 0
