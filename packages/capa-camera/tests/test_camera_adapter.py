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

from .conftest import Collector, decode_video, record


def camera(source, **kw) -> OpenCvCamera:
    kw.setdefault("width", 160)
    kw.setdefault("height", 120)
    kw.setdefault("fps", 20)
    return OpenCvCamera("cam", OpenCvCamera.Params(source=source, **kw))


def check_recording(ctx: Collector, bundle) -> list[int]:
    """Sidecar rows == frames in the file; times monotonic; returns decoded numbers."""
    receipts = ctx.receipts()
    numbers = decode_video(bundle / "video" / "cam.avi")
    assert len(receipts) == len(numbers) > 0
    assert [r.frame_idx for r in receipts] == list(range(len(receipts)))
    t = np.array([r.t_mono_ns for r in receipts])
    assert (np.diff(t) > 0).all()
    assert all(r.capture_latency_s >= 0 for r in receipts)
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
    assert summary.metadata["file"] == "video/cam.avi"
    assert summary.metadata["codec"] == "MJPG"
    assert summary.metadata["health"] == "ok"
    assert summary.severity is EventSeverity.INFO
    assert cam.run_summary() == summary.metadata


def test_frames_the_encoder_cannot_take_are_dropped_and_counted(tmp_path):
    # The run's writer is slow (each receipt takes 60 ms): with a 2-frame queue the
    # capture thread must drop frames rather than fall behind the camera.
    ctx = Collector(tmp_path, emit_delay_s=0.06)
    record(camera("sim://", fps=50, queue_frames=2), ctx, 1.0)
    numbers = check_recording(ctx, tmp_path)
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["dropped"] > 0
    assert summary["captured"] == summary["frames"] + summary["dropped"]
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
    receipts = ctx.receipts()
    # Paced at the file's 30 fps: each frame was due 1/30 s after the previous one
    # (due time = arrival - capture latency).
    due = np.array([r.t_mono_ns - r.capture_latency_s * 1e9 for r in receipts])
    assert np.allclose(np.diff(due), 1e9 / 30, atol=1e3)
    assert ctx.events("camera.source_ended")
    summary = ctx.events("camera.summary")[0].metadata
    assert summary["source_ended"] is True
    assert summary["fps"] == pytest.approx(30.0)


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
