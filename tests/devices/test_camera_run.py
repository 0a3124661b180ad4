"""capa-camera through `capa run`: sim://, a video file and an MJPEG server (killed mid-run)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from capa_camera.mjpeg_server import MjpegServer
from capa_camera.pattern import decode_frame_number, draw_frame

from .helpers import CapaProcess, event_rows, manifest, run_rig, summary, write_rig

pytestmark = pytest.mark.slow

RIG = """
name = "camera-rig"
[[devices]]
name = "cam"
adapter = "camera.opencv"
[devices.params]
source = "{source}"
width = 160
height = 120
fps = {fps}
timeout_s = 1.0
reconnect_interval_s = 0.2

[[devices]]
name = "clock"
adapter = "capa.sim.signals"
[devices.params]
resource = "clock"
rate_hz = 5
[devices.params.signals]
x = {{ kind = "constant", value = 1.0 }}

[[channels]]
name = "x"
kind = "value"
unit = ""
source = {{ device = "clock", field = "x" }}
"""


def decode(path: Path) -> list[int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    numbers = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        numbers.append(decode_frame_number(frame))
    cap.release()
    return numbers


def check_bundle(bundle: Path) -> tuple[list[int], dict]:
    """Sidecar rows == frames in the sealed video; monotonic times; the camera summary."""
    video = bundle / "video" / "cam.avi"
    frames = pq.read_table(bundle / "video" / "cam.frames.parquet")
    assert {"frame_idx", "t_mono_ns", "t_utc", "capture_latency_s"} <= set(frames.column_names)
    numbers = decode(video)
    assert frames.num_rows == len(numbers) > 0
    assert frames.column("frame_idx").to_pylist() == list(range(frames.num_rows))
    t = frames.column("t_mono_ns").to_numpy()
    assert (np.diff(t) > 0).all()
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    # The video is under the seal.
    sealed = dict(
        reversed(line.split("  ", 1))
        for line in (bundle / "manifest.sha256").read_text().splitlines()
    )
    assert sealed["video/cam.avi"] == hashlib.sha256(video.read_bytes()).hexdigest()
    cams = event_rows(bundle, "camera.summary")
    assert len(cams) == 1
    meta = cams[0]["metadata"]
    assert meta["frames"] == frames.num_rows
    assert meta["file"] == "video/cam.avi"
    (listed,) = manifest(bundle)["cameras"]  # the manifest lists the camera too
    assert listed["device"] == "cam"
    assert listed["frames"] == frames.num_rows
    assert listed["file"] == "video/cam.avi"
    assert listed["codec"] == meta["codec"]
    return numbers, meta


def test_sim_recording_10s(tmp_path):
    proc = CapaProcess(tmp_path)
    exp = write_rig(tmp_path, RIG.format(source="sim://", fps=10), duration_s=10)
    bundle, _ = run_rig(proc, exp)
    numbers, meta = check_bundle(bundle)
    assert numbers == list(range(len(numbers)))  # every frame, in order, none dropped
    assert 95 <= len(numbers) <= 115  # 10 fps while the devices sample (a little over 10 s)
    assert meta["dropped"] == 0
    assert meta["health"] == "ok"
    assert manifest(bundle)["bundle_status"] == "sealed"


def test_video_file_recording_10s(tmp_path):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(100):  # 10 s at 10 fps
        writer.write(draw_frame(500 + i, 160, 120, i / 10, 40.0))
    writer.release()
    proc = CapaProcess(tmp_path)
    exp = write_rig(tmp_path, RIG.format(source=str(clip), fps=10), duration_s=13)
    bundle, _ = run_rig(proc, exp)
    numbers, meta = check_bundle(bundle)
    assert numbers == list(range(500, 600))  # the whole file, in order
    assert meta["source_ended"] is True
    assert event_rows(bundle, "camera.source_ended")


def wait_for_frames(proc: CapaProcess, popen, timeout: float = 30) -> Path:
    """Until frame receipts reach the bundle (their Arrow stream is flushed every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert popen.poll() is None, popen.communicate()
        for stream in proc.runs.glob("2*/video/cam.frames*.arrows"):
            if stream.stat().st_size > 1000:
                return stream
        time.sleep(0.05)
    raise AssertionError("no frames recorded")


def test_mjpeg_server_killed_mid_run_reconnects_and_the_run_seals(tmp_path):
    epoch = time.monotonic_ns()
    server = MjpegServer(fps=10, epoch_ns=epoch).start()
    try:
        proc = CapaProcess(tmp_path)
        exp = write_rig(tmp_path, RIG.format(source=server.url, fps=10), duration_s=10)
        popen = proc.start("run", str(exp), "--runs-root", "runs")
        wait_for_frames(proc, popen)
        time.sleep(1.0)
        server.stop()  # the network camera goes away...
        time.sleep(1.5)
        server = MjpegServer(port=server.port, fps=10, epoch_ns=epoch).start()  # ...and back
        out, err = popen.communicate(timeout=60)
    finally:
        server.stop()
    assert popen.returncode == 0, out + err
    s = summary(out)
    assert s["bundle_status"] == "sealed"
    bundle = proc.runs / s["run_id"]
    numbers, meta = check_bundle(bundle)
    assert meta["reconnects"] == 1
    assert meta["health"] == "degraded"
    kinds = [e["kind"] for e in event_rows(bundle, "camera.")]
    assert kinds.index("camera.disconnected") < kinds.index("camera.reconnected")
    assert max(np.diff(numbers)) >= 10  # frames on both sides of a >1 s outage
