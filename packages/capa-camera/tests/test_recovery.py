"""Every point a kill can land in a segment's commit: after finalize, rows == frames.

The recorder is driven directly into a real (unfinalized) bundle, "killed" at one step of
the commit — its files are closed without another byte written, as SIGKILL leaves them —
and core's finalize seals the bundle. Then the frames table must name exactly the segment
files that survive, with exactly as many rows as each decodes to.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

import capa_camera.recording as recording
from capa.bundle.finalize import finalize_bundle
from capa.bundle.writer import BundleWriter
from capa_camera.avi import MjpegAviWriter
from capa_camera.pattern import draw_frame
from capa_camera.recording import FramesTable, SegmentedRecorder

from .conftest import decode_video


class Killed(Exception):
    """Stands for SIGKILL at one step."""


def kill(recorder: SegmentedRecorder) -> None:
    """Close the recorder's descriptors without writing anything more (no end markers)."""
    writer = recorder._writer
    if isinstance(writer, MjpegAviWriter):
        writer.abandon()
    table = recorder._table
    if table is not None:
        table._sink.close()
        os.close(table._fd)


def record(recorder: SegmentedRecorder, frames: int, per_segment: int) -> None:
    for i in range(frames):
        now = i * 1_000_000_000 // per_segment  # run time: per_segment frames a second
        if recorder.due_in_s(now) == 0.0:
            recorder.commit()
        recorder.write(draw_frame(i, 160, 120, i / 10, 40.0), now, "2026-01-01T00:00:00Z", 0.0, now)


WRITERS: dict = {}


@pytest.fixture
def bundle(tmp_path):
    writer = BundleWriter.open(tmp_path / "runs")
    WRITERS[writer.bundle] = writer
    yield writer.bundle
    WRITERS.pop(writer.bundle).close("crashed", "test", finalize=False)


def new_recorder(bundle) -> SegmentedRecorder:
    return SegmentedRecorder(
        bundle / "video", "cam", codec="MJPG", container="avi", fps=10, segment_s=1.0
    )


def seal_and_check(bundle) -> tuple[list[str], list[str]]:
    """Stop the bundle's writer (not finalizing), finalize, check; files and video warnings."""
    WRITERS[bundle].close("crashed", "test", finalize=False)
    result = finalize_bundle(bundle)
    assert result.ok
    rows = pq.read_table(bundle / "video" / "cam.frames.parquet").to_pylist()
    files = sorted(p.name for p in (bundle / "video" / "cam").iterdir())
    assert not [f for f in files if ".in-flight." in f]
    for name in files:
        mine = [r for r in rows if r["segment"] == f"cam/{name}"]
        assert len(mine) == len(decode_video(bundle / "video" / "cam" / name)) > 0
    assert sorted({r["segment"] for r in rows}) == [f"cam/{f}" for f in files]
    assert [r["frame_idx"] for r in rows] == list(range(len(rows)))
    return files, [w for w in result.warnings if w.startswith("video/")]


def test_kill_mid_segment_removes_it(bundle):
    rec = new_recorder(bundle)
    record(rec, 25, per_segment=10)  # two committed segments, five frames in the third
    kill(rec)
    files, warnings = seal_and_check(bundle)
    assert files == ["000000.avi", "000001.avi"]
    assert any("video/cam/000002.in-flight.avi: removed an unfinished" in w for w in warnings)


@pytest.mark.parametrize(
    ("step", "kept"),
    [
        ("close", ["000000.avi"]),  # the segment's file was being completed
        ("append", ["000000.avi"]),  # closed and fsynced, its rows not yet written
        ("replace", ["000000.avi"]),  # rows durable, the rename never happened
        ("fsync", ["000000.avi", "000001.avi"]),  # renamed: committed
    ],
)
def test_kill_at_each_step_of_a_commit(bundle, monkeypatch, step, kept):
    rec = new_recorder(bundle)
    record(rec, 15, per_segment=10)  # one committed segment, five frames in the second

    def die(*args, **kwargs):
        raise Killed(step)

    targets = {
        "close": (MjpegAviWriter, "close"),
        "append": (FramesTable, "append"),
        "replace": (recording.os, "replace"),
    }
    if step == "fsync":
        real = recording._fsync_path

        def fsync_then_die(path):
            real(path)
            if path == rec.folder:  # the folder fsync after the rename
                raise Killed(step)

        monkeypatch.setattr(recording, "_fsync_path", fsync_then_die)
    else:
        monkeypatch.setattr(*targets[step], die)
    with pytest.raises(Killed):
        rec.commit()
    monkeypatch.undo()
    kill(rec)
    files, warnings = seal_and_check(bundle)
    assert files == kept
    if step == "replace":
        assert any(
            "dropped 5 rows whose 'segment' file is not in the bundle" in w for w in warnings
        )


def test_kill_mid_batch_drops_the_torn_rows_and_their_segment(bundle, monkeypatch):
    rec = new_recorder(bundle)
    record(rec, 15, per_segment=10)
    table = rec.table_path
    before = table.stat().st_size

    def torn_replace(src, dst):  # the batch reached the disk only in part
        with open(table, "r+b") as fh:
            fh.truncate(before + (table.stat().st_size - before) // 2)
        raise Killed("replace")

    monkeypatch.setattr(recording.os, "replace", torn_replace)
    with pytest.raises(Killed):
        rec.commit()
    monkeypatch.undo()
    kill(rec)
    files, warnings = seal_and_check(bundle)
    assert files == ["000000.avi"]
    assert any("cam.frames.in-flight.arrows: kept 10 rows" in w for w in warnings)


def test_clean_close_keeps_everything(bundle):
    rec = new_recorder(bundle)
    record(rec, 25, per_segment=10)
    rec.close()
    files, warnings = seal_and_check(bundle)
    assert files == ["000000.avi", "000001.avi", "000002.avi"]
    assert warnings == []
    assert pq.read_table(bundle / "video" / "cam.frames.parquet").num_rows == 25


def test_the_frames_table_is_written_without_importing_pandas(tmp_path):
    """pyarrow.array() imports pandas (seconds, mid-run, on the encoding thread): not used."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import pyarrow as pa
        from capa_camera.recording import FrameRow, FramesTable
        table = FramesTable(Path({str(tmp_path / "cam.frames.arrows")!r}))
        table.append([FrameRow(i, 10 * i, "2026-01-01T00:00:00Z", 0.01, "0.avi", i)
                      for i in range(3)])
        table.close()
        with pa.ipc.open_stream({str(tmp_path / "cam.frames.arrows")!r}) as reader:
            rows = reader.read_all()
        assert rows.column("frame_idx").to_pylist() == [0, 1, 2], rows
        assert rows.column("segment").to_pylist() == ["0.avi"] * 3, rows
        print("pandas" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
