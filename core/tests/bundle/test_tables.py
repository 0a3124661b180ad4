"""Bundle schema v2 tables: Parquet written while recording, wide parts, constant-time seal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capa import SampleRows, ScalarRows
from capa.bundle import tables
from capa.bundle.finalize import finalize_bundle
from capa.bundle.integrity import verify_bundle
from capa.bundle.manifest import read_manifest
from capa.bundle.schema import scalar_batch
from capa.bundle.tableindex import TABLE_INDEX
from capa.cli.main import main

from .conftest import crash

CHANNELS = ("ai0", "ai1", "ai2")
FIXTURES = Path(__file__).parent / "fixtures"


def wide_schema() -> pa.Schema:
    fields = [pa.field("t_mono_ns", pa.int64(), nullable=False)]
    for name in CHANNELS:
        fields.append(
            pa.field(
                name,
                pa.float64(),
                metadata={
                    b"capa.channel": name.encode(),
                    b"capa.role": b"value",
                    b"capa.unit": b"V",
                },
            )
        )
    fields.append(pa.field("ai0.status", pa.dictionary(pa.int32(), pa.string())))
    return pa.schema(fields)


def wide(start: int, n: int, *, null_ai2: bool = False) -> SampleRows:
    t = pa.array(range(start, start + n), pa.int64())
    values = t.cast(pa.float64())
    status = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), n), ["ok"])
    ai2 = pa.nulls(n, pa.float64()) if null_ai2 else values
    batch = pa.RecordBatch.from_arrays([t, values, values, ai2, status], schema=wide_schema())
    return SampleRows(batch, device="daq", table="daq")


def part_files(bundle: Path) -> list[str]:
    return sorted(p.name for p in (bundle / "samples" / "daq").iterdir())


def test_wide_table_rolls_into_parts_that_seal_and_pass_sha256sum(open_writer, monkeypatch):
    monkeypatch.setattr(tables, "PART_VALUES", 5 * 1000)  # 1000 rows of 5 columns per part
    monkeypatch.setattr(tables, "WIDE_GROUP_ROWS", 300)
    writer = open_writer()
    for i in range(35):
        writer.submit(wide(i * 100, 100, null_ai2=i % 2 == 1))
    result = writer.close()
    assert result.ok, (result.integrity.describe(), result.warnings, result.manifest.bundle_status)
    bundle = writer.bundle
    assert part_files(bundle) == [f"part-{n:05d}.parquet" for n in range(4)]
    # Each part is a complete Parquet file with the first batch's schema and metadata.
    for n in range(4):
        part = pq.ParquetFile(bundle / "samples" / "daq" / f"part-{n:05d}.parquet")
        schema = part.schema_arrow
        assert schema.names == wide_schema().names
        assert schema.field("ai1").metadata[b"capa.unit"] == b"V"
        meta = schema.metadata
        assert meta[b"capa.table"] == b"samples"
        assert meta[b"capa.device"] == b"daq"
        assert meta[b"capa.part"] == str(n).encode()
        assert meta[b"capa.bundle_schema_version"] == b"2"
        assert part.metadata.metadata[b"capa.sorted"] == b"true"
        assert part.metadata.num_rows == (1000 if n < 3 else 500)
        assert max(part.metadata.row_group(g).num_rows for g in range(part.num_row_groups)) <= 300
    # The folder reads as one table, in time order (what read_parquet('.../*.parquet') does).
    table = pq.read_table(bundle / "samples" / "daq")
    assert table.column("t_mono_ns").to_pylist() == list(range(3500))
    m = read_manifest(bundle)
    assert m.bundle_schema_version == 2
    assert m.counts["samples"] == {
        "daq": {"rows": 3500, "parts": 4, "channels": {"ai0": 3500, "ai1": 3500, "ai2": 1800}}
    }
    acc = m.counts["accounting"]
    assert acc["status"] == "ok"
    assert acc["files"]["samples/daq"] == {"rows_in_file": 3500, "written": 3500}
    assert not list(bundle.rglob("*.in-flight.*"))
    assert not (bundle / TABLE_INDEX).exists()
    if shutil.which("sha256sum"):
        proc = subprocess.run(
            ["sha256sum", "-c", "--strict", "manifest.sha256"],
            cwd=bundle,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "samples/daq/part-00003.parquet: OK" in proc.stdout
    assert verify_bundle(bundle).ok  # capa's own full re-read agrees


def test_a_sample_table_that_changes_schema_is_rejected_not_corrupted(open_writer):
    writer = open_writer()
    writer.submit(wide(0, 10))
    other = pa.RecordBatch.from_pydict({"t_mono_ns": [11], "x": [1.0]})
    writer.submit(SampleRows(other, device="daq", table="daq"))
    result = writer.close()
    m = read_manifest(writer.bundle)
    assert m.counts["dropped"]["by_reason"] == {"rejected": 1}
    assert m.counts["samples"]["daq"]["rows"] == 10
    assert m.counts["accounting"]["status"] == "ok"
    assert result.ok


def test_close_never_reads_a_closed_table_back(open_writer, monkeypatch):
    """The stop path: counts and digests come from the writer, not from reading the data."""
    monkeypatch.setattr(tables, "PART_VALUES", 5 * 500)
    writer = open_writer()
    for i in range(30):
        writer.submit(wide(i * 100, 100))
        t = pa.array(range(i * 100, i * 100 + 100), pa.int64())
        writer.submit(ScalarRows(scalar_batch(t, "tc1", t.cast(pa.float64())), "ctl"))
    deadline = time.monotonic() + 30
    while writer.metrics().rows < 6000:  # every part opened before the watch starts
        assert time.monotonic() < deadline
        time.sleep(0.01)
    opened: list[str] = []

    def watch(path: object) -> None:
        name = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
        if name.endswith(".parquet"):
            opened.append(name)

    real_pf_init = pq.ParquetFile.__init__
    real_open = os.open
    real_builtin_open = open

    def pf_init(self: pq.ParquetFile, source: object, *args: object, **kwargs: object) -> None:
        watch(source)
        real_pf_init(self, source, *args, **kwargs)  # type: ignore[arg-type]

    def os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if not flags & (os.O_WRONLY | os.O_RDWR):
            watch(path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def builtin_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "r" in mode and "+" not in mode:
            watch(file)
        return real_builtin_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(pq.ParquetFile, "__init__", pf_init)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)
    monkeypatch.setattr(pa, "OSFile", _refuse("pa.OSFile"))
    monkeypatch.setattr(pa, "memory_map", _refuse("pa.memory_map"))
    result = writer.close()
    monkeypatch.undo()
    assert result.ok, result.integrity.describe()
    assert opened == []
    assert len(part_files(writer.bundle)) == 6
    m = read_manifest(writer.bundle)
    assert m.counts["scalars"] == {"rows": 3000, "channels": {"tc1": 3000}}
    assert m.counts["samples"]["daq"]["rows"] == 3000
    assert verify_bundle(writer.bundle).ok  # and the recorded digests were the real ones


def _refuse(what: str) -> object:
    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what}({path!r}) on the stop path")

    return refuse


def test_a_late_scalars_row_is_kept_and_marks_the_file_unsorted(open_writer, monkeypatch):
    monkeypatch.setattr(tables, "LONG_GROUP_ROWS", 100)
    writer = open_writer()
    second = 1_000_000_000
    for i in range(10):  # 10 s of rows, 100 per second
        t = pa.array(range(i * second, (i + 1) * second, second // 100), pa.int64())
        writer.submit(ScalarRows(scalar_batch(t, "a", t.cast(pa.float64())), "ctl"))
    # A row 9.5 s old: its reorder window (2 s) has long passed.
    late = 500_000_000
    writer.submit(ScalarRows(scalar_batch([late], "late", [-1.0]), "ctl"))
    for i in range(10, 12):
        t = pa.array(range(i * second, (i + 1) * second, second // 100), pa.int64())
        writer.submit(ScalarRows(scalar_batch(t, "a", t.cast(pa.float64())), "ctl"))
    result = writer.close()
    assert result.ok
    file = pq.ParquetFile(writer.bundle / "scalars.parquet")
    assert file.metadata.metadata[b"capa.sorted"] == b"false"
    table = file.read()
    assert table.num_rows == 1201
    channels = table.column("channel").to_pylist()
    values = dict(zip(channels, table.column("value").to_pylist(), strict=True))
    assert values["late"] == -1.0
    # Every row group is sorted, and so is everything but the late row.
    stamps = table.column("t_mono_ns").to_pylist()
    times = [t for t, c in zip(stamps, channels, strict=True) if c == "a"]
    assert times == sorted(times)
    assert read_manifest(writer.bundle).counts["scalars"]["channels"] == {"a": 1200, "late": 1}


def test_rows_out_of_order_within_the_window_are_sorted(open_writer):
    writer = open_writer()
    writer.submit(ScalarRows(scalar_batch([5, 1, 3], "a", [5.0, 1.0, 3.0])))
    writer.submit(ScalarRows(scalar_batch([0, 4, 2], "b", [0.0, 4.0, 2.0])))
    assert writer.close().ok
    file = pq.ParquetFile(writer.bundle / "scalars.parquet")
    assert file.metadata.metadata[b"capa.sorted"] == b"true"
    assert file.read().column("t_mono_ns").to_pylist() == [0, 1, 2, 3, 4, 5]


def test_crash_mid_part_rebuilds_the_open_part_from_its_journal(open_writer, monkeypatch):
    monkeypatch.setattr(tables, "PART_VALUES", 5 * 1000)
    writer = open_writer()
    for i in range(25):
        writer.submit(wide(i * 100, 100))
    crash(writer, 2500)
    bundle = writer.bundle
    names = part_files(bundle)
    # Two closed parts, the open one as journal + Parquet without a footer.
    assert names == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.in-flight.arrows",
        "part-00002.in-flight.parquet",
    ]
    result = finalize_bundle(bundle)
    assert result.ok, result.integrity.describe()
    assert part_files(bundle) == [f"part-{n:05d}.parquet" for n in range(3)]
    assert (
        "samples/daq/part-00002.in-flight.arrows -> samples/daq/part-00002.parquet (500 rows)"
        in (result.rewritten)
    )
    table = pq.read_table(bundle / "samples" / "daq")
    assert table.column("t_mono_ns").to_pylist() == list(range(2500))
    m = read_manifest(bundle)
    assert m.counts["samples"]["daq"] == {
        "rows": 2500,
        "parts": 3,
        "channels": {"ai0": 2500, "ai1": 2500, "ai2": 2500},
    }
    acc = m.counts["accounting"]
    assert acc["status"] == "incomplete"  # a killed run is bounded, not exact
    assert acc["files"]["samples/daq"] == {"rows_in_file": 2500, "written": 2500}


def test_recovery_streams_the_journal(open_writer, monkeypatch):
    """Finalize never collects a journal into one list (nor memory-maps it)."""
    import capa.bundle.inflight as inflight

    writer = open_writer()
    for i in range(20):
        t = pa.array(range(i * 100, i * 100 + 100), pa.int64())
        writer.submit(ScalarRows(scalar_batch(t, "tc1", t.cast(pa.float64()))))
    crash(writer, 2000)
    monkeypatch.setattr(inflight, "recover_batches", _refuse("recover_batches"))
    monkeypatch.setattr(pa, "memory_map", _refuse("pa.memory_map"))
    result = finalize_bundle(writer.bundle)
    assert result.ok
    table = pq.read_table(writer.bundle / "scalars.parquet")
    assert table.column("t_mono_ns").to_pylist() == list(range(2000))


def test_a_journal_beside_its_complete_final_file_is_dropped(open_writer, make_rows):
    """Killed after the final rename, before the journal was deleted."""
    writer = open_writer()
    writer.submit(make_rows(0, 100))
    writer.close("completed", finalize=False)
    bundle = writer.bundle
    # What the journal held: a prefix of the final file (its last flush may be missing).
    from capa.bundle.inflight import InflightStream
    from capa.bundle.schema import scalars_schema

    stream = InflightStream(bundle / "scalars.in-flight.arrows", scalars_schema())
    stream.write(make_rows(0, 50).batch)
    stream.flush()
    stream.abort()
    result = finalize_bundle(bundle)
    assert result.ok
    assert "scalars.in-flight.arrows -> removed (scalars.parquet was already complete)" in (
        result.rewritten
    )
    assert pq.read_table(bundle / "scalars.parquet").num_rows == 100


def _copy_v1(tmp_path: Path) -> Path:
    root = tmp_path / "v1"
    shutil.copytree(FIXTURES / "v1-runs", root)
    return root


def test_a_version_1_bundle_finalizes_and_stays_version_1(tmp_path, capsys):
    root = _copy_v1(tmp_path)
    bundle = root / "20260101T000000-0001"
    assert json.loads((bundle / "manifest.json").read_text())["bundle_schema_version"] == 1
    with pytest.raises(SystemExit) as info:
        main(["finalize", bundle.name, "--runs-root", str(root)])
    out = capsys.readouterr().out
    assert info.value.code == 0, out
    m = read_manifest(bundle)
    assert (m.bundle_schema_version, m.bundle_status.value, m.integrity.status.value) == (
        1,
        "sealed",
        "ok",
    )
    assert m.counts["scalars"] == {"rows": 1000, "channels": {"p1": 500, "tc1": 500}}
    assert m.counts["device_records"] == {"bal": 2}
    assert m.counts["accounting"]["status"] == "ok"
    records = pq.read_table(bundle / "device_records" / "bal.parquet")
    assert records.column("t_mono_ns").to_pylist() == [1, 3]
    times = pq.read_table(bundle / "scalars.parquet").column("t_mono_ns").to_pylist()
    assert times == sorted(times)
    assert not list(bundle.rglob("*.in-flight.*"))
    with pytest.raises(SystemExit) as info:
        main(["catalog", "verify", bundle.name, "--runs-root", str(root)])
    assert info.value.code == 0, capsys.readouterr()


def test_a_sealed_version_1_bundle_verifies(tmp_path, capsys):
    root = _copy_v1(tmp_path)
    bundle = root / "20260101T000000-0002"
    with pytest.raises(SystemExit) as info:
        main(["catalog", "rebuild", "--runs-root", str(root)])
    assert info.value.code == 0, capsys.readouterr()
    again = finalize_bundle(bundle)
    assert again.already_sealed
    assert again.ok
    with pytest.raises(SystemExit) as info:
        main(["catalog", "verify", bundle.name, "--runs-root", str(root)])
    assert info.value.code == 0, capsys.readouterr()


# ------------------------------------------------------------------ a real kill, wide
CHILD = """
import sys, time
from pathlib import Path
import pyarrow as pa
import capa.bundle.tables as tables
from capa import SampleRows
from capa.bundle.writer import BundleWriter

tables.PART_VALUES = 2 * 8000  # parts of 8000 rows: several roll before the kill
root, flush_s, batch = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
writer = BundleWriter.open(root, run_id="20260524T143200-7f3b", flush_interval_s=flush_s)
n = 0
while True:
    t = pa.array(range(n, n + batch), pa.int64())
    rows = pa.record_batch({"t_mono_ns": t, "ai0": t.cast(pa.float64())})
    writer.submit(SampleRows(rows, "daq", "daq"))
    n += batch
    print(time.monotonic_ns(), n, writer.metrics().rows_durable, flush=True)
    time.sleep(0.002)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkilled_wide_writer_keeps_every_durable_row_across_parts(runs_root, capsys):
    flush_s, batch = 0.2, 500
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(runs_root), str(flush_s), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
    )
    durable = submitted = 0
    seen: list[tuple[int, int]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            mono, submitted, durable = (int(p) for p in line.split())
            seen.append((mono, submitted))
            # several flushes happened, several parts were closed, the run is under way
            if durable >= 40_000 and len(seen) > 250:
                break
        kill_ns = time.monotonic_ns()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        for line in child.stdout.readlines():
            parts = line.split()
            if len(parts) == 3:
                submitted = max(submitted, int(parts[1]))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
    assert durable >= 40_000, "the child ended before the kill"
    assert kill_ns > 0
    bundle = runs_root / "20260524T143200-7f3b"
    with pytest.raises(SystemExit) as info:
        main(["finalize", bundle.name, "--runs-root", str(runs_root)])
    out = capsys.readouterr().out
    assert info.value.code == 0, out
    assert "integrity_status: ok" in out
    times = pq.read_table(bundle / "samples" / "daq").column("t_mono_ns").to_pylist()
    assert times == list(range(len(times)))  # a clean prefix across every part
    assert durable <= len(times) <= submitted + batch
    # Everything submitted more than one flush interval (+100 ms for the fsync and
    # scheduling) before the kill survived.
    horizon = kill_ns - int((flush_s + 0.1) * 1e9)
    must_have = max((n for mono, n in seen if mono <= horizon), default=0)
    assert must_have > 0
    assert len(times) >= must_have
    assert len(part_files(bundle)) >= 5
    assert not list(bundle.rglob("*.in-flight.*"))
    if shutil.which("sha256sum"):
        proc = subprocess.run(
            ["sha256sum", "-c", "--strict", "manifest.sha256"],
            cwd=bundle,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_closed_journals_leave_the_bundle_and_are_deleted_in_the_background(open_writer, runs_root):
    from capa.bundle import trash

    writer = open_writer()
    writer.submit(wide(0, 100))
    assert writer.close().ok
    trash.drain()
    assert not list(writer.bundle.rglob("*.in-flight.*"))
    assert list(runs_root.glob(f"{trash.TRASH_PREFIX}*")) == []
    # What a killed process left behind is removed when the next run opens.
    left = runs_root / f"{trash.TRASH_PREFIX}1-0-x-part-00000.in-flight.arrows"
    left.write_bytes(b"journal")
    open_writer().close("aborted", finalize=False)
    assert not left.exists()
