"""capa-camera through `capa run`: sim://, a video file, an MJPEG server (killed mid-run),
and `kill -9` of the run itself at random points, then `capa finalize`."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from datetime import datetime
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


def check_video_agrees(bundle: Path) -> tuple[list[int], list[dict]]:
    """Frames-table rows == frames decoded from the segments, row by row; sealed; hashed.

    Returns the decoded frame numbers and the rows.
    """
    frames = pq.read_table(bundle / "video" / "cam.frames.parquet")
    assert {"frame_idx", "t_mono_ns", "t_utc", "capture_latency_s", "segment"} <= set(
        frames.column_names
    )
    rows = frames.to_pylist()
    segments = sorted((bundle / "video" / "cam").iterdir())
    assert [p.name for p in segments if ".in-flight." in p.name] == []
    numbers: list[int] = []
    for path in segments:
        decoded = decode(path)
        mine = [r for r in rows if r["segment"] == f"cam/{path.name}"]
        assert len(mine) == len(decoded) > 0, path.name  # exactly, per segment
        assert [r["segment_frame"] for r in mine] == list(range(len(mine)))
        numbers += decoded
    assert len(rows) == len(numbers) > 0
    assert [r["frame_idx"] for r in rows] == list(range(len(rows)))
    t = np.array([r["t_mono_ns"] for r in rows])
    assert (np.diff(t) > 0).all()
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    # Every segment is under the seal, and the seal checks with plain sha256sum.
    sealed = dict(
        reversed(line.split("  ", 1))
        for line in (bundle / "manifest.sha256").read_text().splitlines()
    )
    for path in segments:
        rel = path.relative_to(bundle).as_posix()
        assert sealed[rel] == hashlib.sha256(path.read_bytes()).hexdigest()
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "manifest.sha256"],
        cwd=bundle,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert manifest(bundle)["counts"]["frames"] == {"cam": len(rows)}
    return numbers, rows


def check_bundle(bundle: Path) -> tuple[list[int], dict]:
    """A cleanly stopped recording: the video agrees, and summary and manifest say so."""
    numbers, rows = check_video_agrees(bundle)
    cams = event_rows(bundle, "camera.summary")
    assert len(cams) == 1
    meta = cams[0]["metadata"]
    assert meta["frames"] == len(rows)
    assert meta["folder"] == "video/cam"
    (listed,) = manifest(bundle)["cameras"]  # the manifest lists the camera and segments
    assert listed["device"] == "cam"
    assert listed["frames"] == len(rows)
    assert listed["codec"] == meta["codec"]
    assert listed["segments"] == [
        {"file": f"video/{name}", "frames": sum(r["segment"] == name for r in rows)}
        for name in sorted({r["segment"] for r in rows})
    ]
    assert meta["segments"] == len(listed["segments"])
    return numbers, meta


def test_sim_recording_10s(tmp_path):
    proc = CapaProcess(tmp_path)
    exp = write_rig(tmp_path, RIG.format(source="sim://", fps=10), duration_s=10)
    bundle, _ = run_rig(proc, exp)
    numbers, meta = check_bundle(bundle)
    assert numbers == list(range(len(numbers)))  # every frame, in order, none dropped
    assert 95 <= len(numbers) <= 115  # 10 fps while the devices sample (a little over 10 s)
    assert meta["dropped"] == 0
    assert meta["captured"] == meta["frames"] == len(numbers)  # every captured frame kept
    assert meta["health"] == "ok"
    assert 10 <= meta["segments"] <= 12  # one a second
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
    """Until the first segment is committed (its rows follow the table's schema)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert popen.poll() is None, popen.communicate()
        for stream in proc.runs.glob("2*/video/cam.frames*.arrows"):
            if stream.stat().st_size > 1000:  # the first segment's rows are durable
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


def test_kill_9_at_random_points_loses_at_most_a_segment_and_video_agrees(tmp_path):
    """SIGKILL `capa run` mid-recording, `capa finalize`: rows == decodable frames, <= ~1 s lost."""
    rng = random.Random(int(os.environ.get("CAPA_KILL_SEED", time.time_ns() % 10_000)))
    delays = [rng.uniform(0.0, 2.5) for _ in range(3)]
    for i, delay in enumerate(delays):
        tmp = tmp_path / f"kill{i}"
        tmp.mkdir()
        proc = CapaProcess(tmp)
        exp = write_rig(tmp, RIG.format(source="sim://", fps=15), duration_s=120)
        popen = proc.start("run", str(exp), "--runs-root", "runs")
        try:
            stream = wait_for_frames(proc, popen)
            time.sleep(delay)
            killed_at = time.time()
            os.kill(popen.pid, signal.SIGKILL)
        finally:
            popen.kill()
            popen.communicate(timeout=30)
        bundle = stream.parents[1]
        fin = proc.run("finalize", bundle.name, "--runs-root", "runs")
        assert fin.returncode == 0, f"delay {delay:.3f} s: {fin.stdout}{fin.stderr}"
        m = manifest(bundle)
        assert (m["run_status"], m["bundle_status"], m["integrity"]["status"]) == (
            "crashed",
            "sealed",
            "ok",
        )
        numbers, rows = check_video_agrees(bundle)
        assert numbers == list(range(len(numbers)))  # a prefix of the recording, no gaps
        last = datetime.fromisoformat(rows[-1]["t_utc"]).timestamp()
        lost_s = killed_at - last
        print(f"kill after {delay:.3f} s: {len(rows)} frames kept, {lost_s:.3f} s lost")
        assert 0 <= lost_s <= 1.5, f"delay {delay:.3f} s: {lost_s:.3f} s of video lost"
        # What finalize removed (the segment being written) is reported, not silent.
        warnings = m["custom"].get("finalize_warnings", [])
        assert all("video/cam/" not in w or "unfinished" in w for w in warnings), warnings
