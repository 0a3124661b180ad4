"""Stop works at any rate (issue 15 item 5): each streaming adapter, far behind its clock.

Every device here is asked for more than the machine can produce (10 MS/s on 8 fields, a
1000 fps camera), so its acquisition loop is behind schedule from the first block on. A
SIGINT must still reach the loop between two blocks: the run ends as an operator stop,
no worker is abandoned after the grace period, and the accounting balances — every row a
device emitted is written or counted as dropped with a reason, including anything that
arrived after the stop. Nothing here times the stop: the bounds are about correctness.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .helpers import CapaProcess, event_rows, manifest, summary, write_rig
from .test_nidaq_run import daq_rig

pytestmark = pytest.mark.slow

FIELDS = 8
RATE = 10_000_000  # per field: far beyond what Python can generate, calibrate and write
BLOCK = 200_000


def signals_rig() -> str:
    """One `capa.sim.signals` device in block mode: FIELDS noise fields at RATE."""
    lines = [
        'name = "fast-rig"',
        "[[devices]]",
        'name = "daq"',
        'adapter = "capa.sim.signals"',
        "[devices.params]",
        'resource = "daq"',
        'mode = "block"',
        f"sample_rate_hz = {RATE}",
        f"block_size = {BLOCK}",
        "[devices.params.signals]",
        *(f'ch{i} = {{ kind = "noise", unit = "V", sigma = 1.0 }}' for i in range(FIELDS)),
    ]
    for i in range(FIELDS):
        lines += ["[[channels]]", f'name = "v{i}"', 'kind = "voltage"', 'unit = "V"']
        lines.append(f'source = {{ device = "daq", field = "ch{i}" }}')
    return "\n".join(lines) + "\n"


CAMERA_RIG = """
name = "fast-camera"
[[devices]]
name = "cam"
adapter = "camera.opencv"
[devices.params]
source = "sim://"
width = 640
height = 480
fps = 1000
queue_frames = 32
segment_s = 0.5

[[devices]]
name = "clock"
adapter = "capa.sim.signals"
[devices.params]
resource = "clock"
rate_hz = 5
[devices.params.signals]
x = { kind = "constant", value = 1.0 }

[[channels]]
name = "x"
kind = "value"
unit = ""
source = { device = "clock", field = "x" }
"""


def stop_while_behind(tmp: Path, rig: str, settle_s: float = 1.5) -> tuple[Path, dict]:
    """Start a free run, SIGINT it once it has sampled a while; the sealed bundle."""
    proc = CapaProcess(tmp)
    exp = write_rig(tmp, rig, duration_s=3600, grace_s=5)
    child = proc.start("run", str(exp), "--runs-root", "runs")
    try:
        deadline = time.monotonic() + 120
        while not any("conductor.running" in p.read_text() for p in proc.runs.glob("*/run.log")):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        time.sleep(settle_s)  # well behind its sample clock by now
        child.send_signal(signal.SIGINT)
        # Generous: a stop that cannot run on the loop never comes back at all (the run
        # then sits in its free run until this expires); a slow machine only takes longer.
        out, err = child.communicate(timeout=300)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    assert child.returncode == 1, out + err  # operator stop (seed 001)
    s = summary(out)
    assert s["run_status"] == "aborted", s
    assert s["exit_reason"] == "operator_stop", s
    assert s["bundle_status"] == "sealed", s
    assert s["integrity_status"] == "ok", s
    bundle = proc.runs / s["run_id"]
    m = manifest(bundle)
    runtime = m["queue_health"]["runtime"]
    assert runtime["abandoned_workers"] == [], runtime
    assert not any(w["abandoned"] for w in runtime["workers"].values()), runtime
    assert not [e for e in event_rows(bundle, "") if "abandon" in e["kind"]]
    return bundle, m


def assert_balanced(m: dict) -> dict[str, dict]:
    """emitted == written + dropped for every device and stream; files hold `written`."""
    acc = m["counts"]["accounting"]
    assert acc["status"] == "ok", acc
    assert acc["exact"] is True, acc
    for device, streams in acc["devices"].items():
        for stream, c in streams.items():
            assert c["emitted"] == c["written"] + sum(c["dropped"].values()), (device, stream, c)
    for name, f in acc["files"].items():
        assert f["rows_in_file"] == f["written"], (name, f)
    return acc["devices"]


def wide_rows(bundle: Path, device: str) -> int:
    """Rows of a device's wide table, from its parts' footers."""
    parts = sorted((bundle / "samples" / device).glob("part-*.parquet"))
    assert parts, f"no wide table for {device}"
    return sum(pq.read_metadata(p).num_rows for p in parts)


def test_sim_signals_block_mode_stops_at_10_ms_s_on_8_fields(tmp_path):
    bundle, m = stop_while_behind(tmp_path, signals_rig())
    # A streamed device is recorded wide: one row per sample-clock tick.
    c = assert_balanced(m)["daq"]["samples/daq"]
    assert c["emitted"] > 0
    # Whole blocks only: a block is emitted completely or not at all.
    assert c["emitted"] % BLOCK == 0, c
    assert wide_rows(bundle, "daq") == c["written"]


def test_nidaq_simulated_task_stops_at_10_ms_s_on_8_channels(tmp_path):
    bundle, m = stop_while_behind(tmp_path, daq_rig("sim://?seed=3", FIELDS, RATE, BLOCK))
    c = assert_balanced(m)["daq"]["samples/daq"]
    assert c["emitted"] > 0
    (done,) = event_rows(bundle, "nidaq.summary")  # the stream ended and said so
    per_channel = done["metadata"]["samples_per_channel"]
    assert c["emitted"] == per_channel, (c, done)  # one wide row per sample of each channel
    assert wide_rows(bundle, "daq") == c["written"]


def test_camera_stops_at_1000_fps(tmp_path):
    bundle, m = stop_while_behind(tmp_path, CAMERA_RIG)
    assert_balanced(m)
    (cam,) = m["cameras"]
    assert cam["captured"] > 0
    # Every frame captured is in a committed segment, or counted as dropped or lost.
    assert cam["captured"] == cam["frames"] + cam["dropped"] + cam["lost_uncommitted"], cam
    assert sum(s["frames"] for s in cam["segments"]) == cam["frames"]
    assert pq.read_metadata(bundle / "video" / "cam.frames.parquet").num_rows == cam["frames"]
    (done,) = event_rows(bundle, "camera.summary")
    assert done["metadata"]["frames"] == cam["frames"]
