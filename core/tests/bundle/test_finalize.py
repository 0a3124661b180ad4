import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from capa import DeviceRecords
from capa.bundle.finalize import finalize_bundle
from capa.bundle.manifest import read_manifest
from capa.errors import BundleError, FinalizeError


def _snapshot(bundle: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(bundle).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in bundle.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def open_bundle(open_writer, make_rows, monkeypatch):
    """A bundle whose writer stopped without finalizing (10 batches of 100 rows) and left
    its table to finalize: a complete journal, no Parquet file (what a version-1 writer
    left, and a version-2 writer whose Parquet side failed)."""
    from capa.bundle.files import BundleFiles

    close = BundleFiles.close

    def close_leaving_journals(self: BundleFiles) -> list[BaseException]:
        self.release_tables()
        return close(self)

    monkeypatch.setattr(BundleFiles, "close", close_leaving_journals)
    writer = open_writer()
    for i in range(10):
        writer.submit(make_rows(i * 100, 100))
    writer.close("completed", finalize=False)
    monkeypatch.undo()
    assert (writer.bundle / "scalars.in-flight.arrows").exists()
    return writer.bundle


def test_finalize_seals_and_is_idempotent(open_bundle):
    first = finalize_bundle(open_bundle)
    assert first.ok
    assert not first.already_sealed
    assert first.rewritten == [
        "scalars.in-flight.arrows -> scalars.parquet (1000 rows)",
        "events.sqlite (WAL folded in, single-file mode, 0 events)",
    ]
    assert not list(open_bundle.rglob("*.in-flight.arrows"))
    before = _snapshot(open_bundle)
    again = finalize_bundle(open_bundle)
    assert again.already_sealed
    assert again.ok
    assert again.rewritten == []
    assert _snapshot(open_bundle) == before  # not one byte (nor mtime) changed


def test_torn_tail_is_dropped_and_reported(open_bundle):
    stream = open_bundle / "scalars.in-flight.arrows"
    data = stream.read_bytes()
    stream.write_bytes(data[: len(data) - 8 - 100])  # lose the end marker and part of a batch
    result = finalize_bundle(open_bundle)
    # The writer closed cleanly after writing 1000 rows: 100 missing rows are data lost
    # after the fact, so the bundle is sealed with what was kept but fails verification.
    assert not result.ok
    m = read_manifest(open_bundle)
    assert m.bundle_status.value == "verification_failed"
    assert m.integrity.status.value == "partial"
    assert m.counts["scalars"]["rows"] == 900
    assert m.counts["accounting"]["status"] == "mismatch"
    assert m.counts["accounting"]["files"]["scalars"] == {"rows_in_file": 900, "written": 1000}
    warnings = m.custom["finalize_warnings"]
    assert len(warnings) == 2
    assert "scalars.in-flight.arrows" in warnings[0]
    assert "kept 900 rows in 9 complete batches" in warnings[0]
    assert "the file holds 900 rows, the writer wrote 1000" in warnings[1]
    assert result.warnings == warnings
    times = pq.read_table(open_bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
    assert times == list(range(900))


def test_corrupted_stream_keeps_the_batches_before_the_damage(open_bundle):
    stream = open_bundle / "scalars.in-flight.arrows"
    data = bytearray(stream.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = b"\x00\xff" * 100
    stream.write_bytes(bytes(data))
    result = finalize_bundle(open_bundle)
    assert not result.ok  # rows the writer wrote are gone: accounting mismatch
    assert read_manifest(open_bundle).counts["accounting"]["status"] == "mismatch"
    rows = read_manifest(open_bundle).counts["scalars"]["rows"]
    assert 0 < rows < 1000
    assert rows % 100 == 0
    assert "dropped" in result.warnings[0]
    times = pq.read_table(open_bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
    assert times == list(range(rows))


def test_stream_torn_inside_its_schema(open_bundle):
    (open_bundle / "scalars.in-flight.arrows").write_bytes(b"\xff\xff\xff\xff")
    (open_bundle / "device_records").mkdir()
    (open_bundle / "device_records" / "bal.in-flight.arrows").write_bytes(b"")
    result = finalize_bundle(open_bundle)
    assert not result.ok  # 1000 written rows lost
    assert result.manifest.integrity.status.value == "partial"
    assert pq.read_table(open_bundle / "scalars.parquet").num_rows == 0
    assert not (open_bundle / "device_records" / "bal.parquet").exists()
    assert any("device_records/bal.in-flight.arrows" in w for w in result.warnings)


def test_crash_between_parquet_rename_and_stream_removal(open_bundle):
    finalize_bundle(open_bundle)  # produce scalars.parquet
    # Rebuild the "crashed mid-finalize" state: manifest finalizing, no checksums,
    # a stray temp file, parquet present.
    m = json.loads((open_bundle / "manifest.json").read_text())
    m.update(bundle_status="finalizing", integrity={"status": "unknown", "algorithm": "sha256"})
    (open_bundle / "manifest.json").write_text(json.dumps(m))
    (open_bundle / "manifest.sha256").unlink()
    (open_bundle.parent / "seals.jsonl").unlink()  # the crash came before the seal
    (open_bundle / ".capa-tmp-scalars.parquet").write_bytes(b"half")
    result = finalize_bundle(open_bundle)
    assert result.ok
    assert "scalars.parquet" in result.skipped
    assert not (open_bundle / ".capa-tmp-scalars.parquet").exists()


def test_unreadable_parquet_without_source_is_a_finalize_error(open_bundle):
    finalize_bundle(open_bundle)
    m = json.loads((open_bundle / "manifest.json").read_text())
    m.update(bundle_status="finalizing", integrity={"status": "unknown", "algorithm": "sha256"})
    (open_bundle / "manifest.json").write_text(json.dumps(m))
    (open_bundle / "manifest.sha256").unlink()
    (open_bundle.parent / "seals.jsonl").unlink()  # the crash came before the seal
    parquet = open_bundle / "scalars.parquet"
    parquet.write_bytes(parquet.read_bytes()[:100])  # truncated
    with pytest.raises(FinalizeError, match=r"scalars\.parquet is not a readable Parquet"):
        finalize_bundle(open_bundle)
    assert parquet.stat().st_size == 100  # left as it was


def test_edited_sealed_bundle_fails_reverification_without_changes(open_bundle):
    finalize_bundle(open_bundle)
    parquet = open_bundle / "scalars.parquet"
    data = bytearray(parquet.read_bytes())
    data[50] ^= 0xFF
    parquet.write_bytes(bytes(data))
    before = _snapshot(open_bundle)
    result = finalize_bundle(open_bundle)
    assert not result.ok
    assert result.integrity.changed == ["scalars.parquet"]
    assert _snapshot(open_bundle) == before


def test_running_manifest_becomes_crashed(open_writer, make_rows):
    writer = open_writer()
    writer.submit(make_rows(0, 10))
    writer.close("completed", finalize=False)
    # what a killed writer leaves: the manifest still says "running"
    m = json.loads((writer.bundle / "manifest.json").read_text())
    m.update(run_status="running", ended_utc=None, exit_reason="")
    (writer.bundle / "manifest.json").write_text(json.dumps(m))
    result = finalize_bundle(writer.bundle)
    assert result.manifest.run_status.value == "crashed"
    assert "capa finalize" in result.manifest.exit_reason
    assert result.manifest.ended_utc


def test_missing_and_unknown_manifests(open_bundle):
    manifest = open_bundle / "manifest.json"
    data = json.loads(manifest.read_text())
    data["bundle_schema_version"] = 7
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="unknown bundle_schema_version 7") as info:
        finalize_bundle(open_bundle)
    assert not isinstance(info.value, FinalizeError)
    manifest.unlink()
    with pytest.raises(BundleError, match="manifest missing"):
        finalize_bundle(open_bundle)
    assert (open_bundle / "scalars.in-flight.arrows").exists()  # nothing was touched


def test_missing_events_db_is_recreated_with_a_warning(open_bundle):
    (open_bundle / "events.sqlite").unlink()
    for side in ("events.sqlite-wal", "events.sqlite-shm"):
        (open_bundle / side).unlink(missing_ok=True)
    result = finalize_bundle(open_bundle)
    assert result.ok
    assert any("events.sqlite was missing" in w for w in result.warnings)
    conn = sqlite3.connect(open_bundle / "events.sqlite")
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    conn.close()


def test_corrupt_events_db_is_a_finalize_error(open_bundle):
    (open_bundle / "events.sqlite").write_bytes(b"this is not sqlite" * 100)
    for side in ("events.sqlite-wal", "events.sqlite-shm"):
        (open_bundle / side).unlink(missing_ok=True)
    with pytest.raises(FinalizeError, match=r"events\.sqlite"):
        finalize_bundle(open_bundle)


def test_verification_failure_is_recorded(open_bundle, monkeypatch):
    import capa.bundle.finalize as fin

    real = fin.write_checksums

    def tamper_after_hashing(bundle, **kwargs):
        hashes = real(bundle, **kwargs)
        (bundle / "run.log").write_text("changed behind finalize's back\n")
        return hashes

    monkeypatch.setattr(fin, "write_checksums", tamper_after_hashing)
    result = finalize_bundle(open_bundle)
    assert not result.ok
    m = read_manifest(open_bundle)
    assert (m.bundle_status.value, m.integrity.status.value) == ("verification_failed", "mismatch")
    assert result.integrity.changed == ["run.log"]
    assert os.path.exists(open_bundle / "manifest.sha256")


def test_large_runs_are_written_in_row_groups_without_losing_order(
    open_writer, make_rows, monkeypatch
):
    import pyarrow as pa

    from capa import ScalarRows
    from capa.bundle import tables
    from capa.bundle.schema import scalar_batch

    monkeypatch.setattr(tables, "LONG_GROUP_ROWS", 250)  # stands in for 2**16 at test scale
    writer = open_writer()
    step = 10_000_000  # 10 ms: 1000 rows span 10 s, five reorder windows
    for i in range(10):
        t = pa.array(range(i * 100 * step, (i + 1) * 100 * step, step), pa.int64())
        writer.submit(ScalarRows(scalar_batch(t, "tc1", t.cast(pa.float64()))))
    result = writer.close()
    assert result.ok
    meta = pq.ParquetFile(writer.bundle / "scalars.parquet").metadata
    # A group is cut once 250 rows are buffered, of the rows 2 s older than the newest.
    assert 1 < meta.num_row_groups < 10
    assert meta.num_rows == 1000
    assert meta.metadata[b"capa.sorted"] == b"true"
    times = pq.read_table(writer.bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
    assert times == list(range(0, 1000 * step, step))


def test_device_records_with_missing_times_are_sorted_last(open_writer):
    writer = open_writer()
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [5, None, 1], "mass": [5.0, 0.0, 1.0]}))
    writer.submit(DeviceRecords("bal", {"t_mono_ns": [3], "mass": [3.0]}))
    assert writer.close().ok
    table = pq.read_table(writer.bundle / "device_records/bal.parquet")
    assert table.column("t_mono_ns").to_pylist() == [1, 3, 5, None]
    assert table.column("mass").to_pylist() == [1.0, 3.0, 5.0, 0.0]
