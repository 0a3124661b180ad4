"""CPU cost of recording with ``camera.opencv`` from the ``sim://`` pattern.

    uv run python bench/camera_throughput.py [--seconds 10] [--sizes 160x120,640x480,1280x720]
        [--fps 30] [--codec MJPG] [--container avi] [--segment-s 1.0]

For each frame size the adapter records ``--seconds`` of the synthetic pattern at
``--fps`` into a temporary directory (capture thread: pattern synthesis; encoder thread:
the segmented recorder — ``cv2.imencode`` into capa-camera's own MJPEG AVI writer for
MJPG/avi, ``cv2.VideoWriter`` otherwise — committing a segment and its frame rows every
``--segment-s``). Reports frames written, frames dropped, process CPU time (all threads)
per frame and as a share of one core, and the bytes of everything under ``video/`` per
second. Prints figures; asserts nothing. ``--segment-s`` is ignored by capa-camera
versions without segments (to measure an older version, put its ``src`` first on
``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path


class CountingContext:
    device = "cam"

    def __init__(self, bundle: Path) -> None:
        from capa import RunClock

        self.clock = RunClock()
        self.bundle_path = bundle
        self.receipts = 0

    def emit(self, emission) -> None:
        if type(emission).__name__ == "FrameReceipt":
            self.receipts += 1

    def latest(self, channel: str) -> float | None:
        return None


def bench(
    width: int,
    height: int,
    fps: float,
    codec: str,
    container: str,
    segment_s: float,
    seconds: float,
) -> dict:
    from capa_camera.adapter import OpenCvCamera

    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {"segment_s": segment_s} if "segment_s" in OpenCvCamera.Params.model_fields else {}
        params = OpenCvCamera.Params(
            source="sim://",
            width=width,
            height=height,
            fps=fps,
            codec=codec,
            container=container,
            **kwargs,
        )
        cam = OpenCvCamera("cam", params)
        ctx = CountingContext(Path(tmp))
        snap: dict = {}

        async def body() -> None:
            await cam.open()
            await cam.start(ctx)
            task = asyncio.ensure_future(cam.stream(ctx))
            await asyncio.sleep(seconds)
            snap.update(await cam.snapshot())
            await cam.stop()
            await task
            await cam.close()

        cpu0, wall0 = time.process_time(), time.perf_counter()
        asyncio.run(body())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = sum(p.stat().st_size for p in (Path(tmp) / "video").rglob("*") if p.is_file())
    frames = int(cam.run_summary().get("frames", ctx.receipts))
    return {
        "frames": frames,
        "dropped": snap.get("dropped", 0),
        "cpu_ms_per_frame": 1000 * cpu / max(1, frames),
        "cpu_percent_of_one_core": 100 * cpu / wall,
        "mb_per_s": size / 1e6 / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sizes", default="160x120,640x480,1280x720")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--codec", default="MJPG")
    parser.add_argument("--container", default="avi")
    parser.add_argument("--segment-s", type=float, default=1.0)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} "
        f"cores, sim:// at {args.fps:g} fps, {args.codec} in {args.container}, "
        f"segments of {args.segment_s:g} s, {args.seconds:g} s each"
    )
    print("| size | frames | dropped | CPU ms/frame | % of one core | MB/s of video |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        w, h = (int(x) for x in size.split("x"))
        r = bench(w, h, args.fps, args.codec, args.container, args.segment_s, args.seconds)
        print(
            f"| {w}x{h} | {r['frames']} | {r['dropped']} | {r['cpu_ms_per_frame']:.2f} | "
            f"{r['cpu_percent_of_one_core']:.1f} | {r['mb_per_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
