"""camera.opencv recording from sim://, a file and an MJPEG server, driven like its worker."""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest

from capa import DeviceError, EventSeverity
from capa_camera.adapter import OpenCvCamera
from capa_camera.mjpeg_server import MjpegServer
from capa_camera.pattern import draw_frame
from capa_camera.recording import SegmentedRecorder

from .conftest import Collector, decode_segments, decode_video, frame_rows, record


def camera(source, **kw) -> OpenCvCamera:
    kw.setdefault("width", 160)
    kw.setdefault("height", 120)
    kw.setdefault("fps", 20)
    return OpenCvCamera("cam", OpenCvCamera.Params(source=source, **kw))


def check_recording(ctx: Collector, bundle) -> list[int]:
    """Frames-table rows == frames in the segments, row by row; returns decoded numbers."""
    rows = frame_rows(bundle)
    files, numbers = decode_segments(bundle)
    assert len(rows) == len(numbers) > 0
    assert [r["frame_idx"] for r in rows] == list(range(len(rows)))
    # Each row names its segment and its place in it, in file order.
    assert sorted({r["segment"] for r in rows}) == files
    for file in files:
        mine = [r["segment_frame"] for r in rows if r["segment"] == file]
        assert mine == list(range(len(mine)))
        assert len(mine) == len(decode_video(bundle / "video" / file))
    t = np.array([r["t_mono_ns"] for r in rows])
    assert (np.diff(t) > 0).all()
    assert all(r["capture_latency_s"] >= 0 for r in rows)
    assert ctx.receipts() == []  # a bundle recording keeps its own table
    assert not list(bundle.rglob("*.in-flight.avi"))  # every segment was committed
    return numbers


def test_sim_recording_keeps_every_frame_in_order(tmp_path):
    ctx = Collector(tmp_path)
    cam = camera("sim://")
    snap = record(cam, ctx, 1.0)
    numbers = check_recording(ctx, tmp_path)
    assert numbers == list(range(len(numbers)))
    assert 15 <= len(numbers) <= 25  # 20 fps for one second
    jpeg = cv2.imdecode(np.frombuffer(snap["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (120, 160, 3)
    summary = ctx.events("camera.summary")[0]
    assert summary.metadata["frames"] == len(numbers)
    assert summary.metadata["folder"] == "video/cam"
    assert summary.metadata["codec"] == "MJPG"
    assert summary.metadata["health"] == "ok"
    assert summary.severity is EventSeverity.INFO
    listed = cam.run_summary()
    assert listed == {**summary.metadata, "segments": listed["segments"]}
    assert summary.metadata["segments"] == len(listed["segments"]) >= 1
    assert sum(g["frames"] for g in listed["segments"]) == len(numbers)
    assert [g["file"] for g in listed["segments"]] == [
        f"video/{f}" for f in decode_segments(tmp_path)[0]
    ]
    # Seed 003: the recording's start (with its first frame) and stop (with the counts),
    # in that order, before the summary.
    kinds = [e.kind for e in ctx.events()]
    assert kinds.index("camera.recording_started") < kinds.index("camera.recording_stopped")
    assert kinds.index("camera.recording_stopped") < kinds.index("camera.summary")
    (started,) = ctx.events("camera.recording_started")
    (stopped,) = ctx.events("camera.recording_stopped")
    assert started.metadata["folder"] == "video/cam"
    assert started.metadata["first_frame_t_mono_ns"] == frame_rows(tmp_path)[0]["t_mono_ns"]
    assert (started.metadata["width"], started.metadata["height"]) == (160, 120)
    assert stopped.metadata["frames"] == len(numbers)
    assert stopped.metadata["segments"] == len(listed["segments"])
    assert stopped.metadata["lost_uncommitted"] == 0
    assert stopped.metadata["reason"] == "stopped"
    assert stopped.severity is EventSeverity.INFO


def test_segments_rotate_every_segment_s(tmp_path):
    ctx = Collector(tmp_path)
    record(camera("sim://", fps=20, segment_s=0.25), ctx, 1.6)
    numbers = check_recording(ctx, tmp_path)
    assert numbers == list(range(len(numbers)))
    rows = frame_rows(tmp_path)
    per_segment = {}
    for r in rows:
        per_segment.setdefault(r["segment"], []).append(r["t_mono_ns"])
    assert len(per_segment) >= 5
    # No segment spans much more than segment_s of frames (a frame interval of slack).
    assert max(t[-1] - t[0] for t in per_segment.values()) <= 0.25e9 + 0.06e9


def test_other_codecs_are_written_through_cv2_videowriter(tmp_path):
    ctx = Collector(tmp_path)
    record(camera("sim://", codec="XVID", segment_s=0.5), ctx, 1.2)
    numbers = check_recording(ctx, tmp_path)
    assert numbers == list(range(len(numbers)))


def test_frames_the_encoder_cannot_take_are_dropped_and_counted(tmp_path, monkeypatch):
    # The encoder is slow (each frame takes 60 ms): with a 2-frame queue the capture
    # thread must drop frames rather than fall behind the camera.
    write = SegmentedRecorder.write

    def slow_write(self, *args):
        time.sleep(0.06)
        return write(self, *args)

    monkeypatch.setattr(SegmentedRecorder, "write", slow_write)
    ctx = Collector(tmp_path)
    record(camera("sim://", fps=50, queue_frames=2), ctx, 1.0)
    numbers = check_recording(ctx, tmp_path)
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["dropped"] > 0
    assert summary["captured"] == summary["frames"] + summary["dropped"]
    assert summary["lost_uncommitted"] == 0
    assert summary["health"] == "degraded"
    assert ctx.events("camera.frames_dropped")
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    assert numbers[-1] > len(numbers)  # the gaps are the dropped frames


def test_sim_source_frame_loss_shows_in_the_numbers(tmp_path):
    ctx = Collector(tmp_path)
    record(camera("sim://?drop_every=4"), ctx, 0.8)
    numbers = check_recording(ctx, tmp_path)
    assert all(n % 4 != 3 for n in numbers)
    assert numbers == sorted(numbers)


def make_clip(path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (160, 120))
    for i in range(frames):
        writer.write(draw_frame(1000 + i, 160, 120, i / fps, 40.0))
    writer.release()


def test_a_video_file_is_replayed_at_its_rate_then_ends(tmp_path):
    clip = tmp_path / "clip.avi"
    make_clip(clip, 12, 30.0)
    bundle = tmp_path / "bundle"
    ctx = Collector(bundle)
    snap = record(camera(str(clip)), ctx, 10.0)
    assert snap["ended_by_itself"]  # the stream ended with the file, not at the timeout
    numbers = check_recording(ctx, bundle)
    assert numbers == list(range(1000, 1012))
    rows = frame_rows(bundle)
    # Paced at the file's 30 fps: each frame was due 1/30 s after the previous one
    # (due time = arrival - capture latency).
    due = np.array([r["t_mono_ns"] - r["capture_latency_s"] * 1e9 for r in rows])
    assert np.allclose(np.diff(due), 1e9 / 30, atol=1e3)
    assert ctx.events("camera.source_ended")
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["source_ended"] is True
    assert summary["fps"] == pytest.approx(30.0)
    (stopped,) = ctx.events("camera.recording_stopped")
    assert (stopped.metadata["reason"], stopped.metadata["frames"]) == ("source_ended", 12)


def test_a_source_that_cannot_open_is_a_device_error(tmp_path):
    with pytest.raises(DeviceError, match=r"nope\.avi"):
        asyncio.run(camera(str(tmp_path / "nope.avi")).open())


def test_handshake_grabs_one_frame(tmp_path):
    ok = asyncio.run(
        OpenCvCamera.handshake(OpenCvCamera.Params(source="sim://", width=64, height=48))
    )
    assert ok.ok
    assert "64x48" in ok.detail
    bad = asyncio.run(OpenCvCamera.handshake(OpenCvCamera.Params(source=str(tmp_path / "x.avi"))))
    assert not bad.ok
    assert "x.avi" in bad.detail


def test_commands_are_refused():
    result = asyncio.run(camera("sim://").command(__import__("capa").Command("zoom")))
    assert result.accepted is False


def test_mjpeg_source_reconnects_after_the_server_dies(tmp_path):
    epoch = time.monotonic_ns()
    server = MjpegServer(fps=10, epoch_ns=epoch).start()
    ctx = Collector(tmp_path)
    cam = camera(server.url, fps=10, timeout_s=1.0, reconnect_interval_s=0.1)

    async def body() -> None:
        nonlocal server
        await cam.open()
        await cam.start(ctx)
        task = asyncio.ensure_future(cam.stream(ctx))
        await asyncio.sleep(1.0)
        server.stop()  # the camera "loses power"
        await asyncio.sleep(0.8)
        server = MjpegServer(port=server.port, fps=10, epoch_ns=epoch).start()
        await asyncio.sleep(1.2)
        await cam.stop()
        await asyncio.wait_for(task, 10)
        await cam.close()

    try:
        asyncio.run(body())
    finally:
        server.stop()
    numbers = check_recording(ctx, tmp_path)
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    kinds = [e.kind for e in ctx.events()]
    assert kinds.index("camera.disconnected") < kinds.index("camera.reconnected")
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["reconnects"] == 1
    assert summary["source_kind"] == "network"
    # Frames came both before and after the outage: the numbers jump over it.
    assert max(np.diff(numbers)) >= 5


def test_a_second_run_on_the_same_adapter_starts_a_fresh_recording(tmp_path):
    cam = camera("sim://")
    first, second = Collector(tmp_path / "a"), Collector(tmp_path / "b")

    async def run(ctx: Collector, seconds: float) -> None:
        await cam.start(ctx)
        task = asyncio.ensure_future(cam.stream(ctx))
        await asyncio.sleep(seconds)
        await cam.stop()
        await asyncio.wait_for(task, 10)

    async def body() -> None:
        await cam.open()
        await run(first, 0.4)
        await asyncio.sleep(0.5)  # between runs: a stale pacing clock would burst frames
        await run(second, 0.4)
        await cam.close()

    asyncio.run(body())
    for ctx in (first, second):
        numbers = check_recording(ctx, ctx.bundle_path)
        assert numbers == list(range(len(numbers)))
        assert len(numbers) <= 12  # 20 fps for 0.4 s, not a burst of catch-up frames


def _record_expecting_failure(cam, ctx, seconds: float = 3.0) -> DeviceError:
    async def body() -> DeviceError:
        await cam.open()
        await cam.start(ctx)
        task = asyncio.ensure_future(cam.stream(ctx))
        done, _ = await asyncio.wait({task}, timeout=seconds)
        assert done, "a failed recording must end stream() by itself"
        with pytest.raises(DeviceError) as info:
            task.result()
        await cam.close()
        return info.value

    return asyncio.run(body())


@pytest.fixture
def thread_tracebacks(monkeypatch):
    """Exceptions that escaped a thread (each would print a traceback)."""
    import threading

    escaped: list = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    return escaped


def test_a_full_disk_ends_the_recording_as_a_device_error(tmp_path, monkeypatch, thread_tracebacks):
    import errno
    import os

    import capa_camera.avi as avi

    calls = {"n": 0}
    real_write = os.write

    def write(fd, data):
        calls["n"] += 1
        if calls["n"] > 25:  # headers and some frames fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(avi.os, "write", write)
    ctx = Collector(tmp_path)
    error = _record_expecting_failure(camera("sim://", segment_s=0.5), ctx)
    assert "disk is full" in str(error)
    assert thread_tracebacks == []
    errors = ctx.events("camera.error")
    assert errors
    assert "No space left on device" in errors[0].message
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["health"] == "failed"
    assert "disk is full" in summary["error"]
    # What was committed before the disk filled still agrees row for row; the segment
    # being written stays unfinished for finalize to remove.
    rows = frame_rows(tmp_path)
    files = sorted(p.name for p in (tmp_path / "video" / "cam").iterdir())
    committed = [f for f in files if ".in-flight." not in f]
    assert len(rows) == sum(len(decode_video(tmp_path / "video" / "cam" / f)) for f in committed)
    assert summary["frames"] == len(rows)
    assert summary["lost_uncommitted"] > 0  # the frames of the segment that failed
    assert summary["captured"] == len(rows) + summary["lost_uncommitted"] + summary["dropped"]
    assert [f for f in files if ".in-flight." in f]
    (stopped,) = ctx.events("camera.recording_stopped")
    assert stopped.metadata["reason"] == "failed"
    assert "No space left on device" in stopped.metadata["error"]
    assert stopped.metadata["frames"] == len(rows)
    assert stopped.severity is EventSeverity.WARNING


def test_a_run_that_cannot_take_events_gives_a_device_error_not_a_traceback(
    tmp_path, thread_tracebacks
):
    from capa import BundleError

    class Broken(Collector):
        def emit(self, emission) -> None:
            raise BundleError("the bundle writer failed: [Errno 28] No space left on device")

    ctx = Broken(None)  # no bundle: every frame is a receipt through emit()
    error = _record_expecting_failure(camera("sim://"), ctx)
    assert "No space left on device" in str(error)
    assert thread_tracebacks == []


def test_without_a_bundle_frames_are_receipts(tmp_path):
    ctx = Collector(None)
    record(camera("sim://"), ctx, 0.5)
    receipts = ctx.receipts()
    assert receipts
    assert [r.frame_idx for r in receipts] == list(range(len(receipts)))
    assert ctx.events("camera.summary")[0].metadata["folder"] is None
    # Nothing is recorded, so there is no recording to start or stop.
    assert not ctx.events("camera.recording_started")
    assert not ctx.events("camera.recording_stopped")


def test_a_segment_that_reaches_the_avi_size_limit_is_committed_early(tmp_path, monkeypatch):
    import capa_camera.avi as avi

    monkeypatch.setattr(avi, "MAX_MOVI_BYTES", 8_000)  # a few frames of 160x120
    ctx = Collector(tmp_path)
    record(camera("sim://", segment_s=60), ctx, 1.0)
    numbers = check_recording(ctx, tmp_path)
    assert numbers == list(range(len(numbers)))
    files = sorted((tmp_path / "video" / "cam").iterdir())
    assert len(files) >= 3  # by size, not by time (segment_s is a minute)
    assert all(p.stat().st_size < 8_000 + 10_000 for p in files)
