"""CPU cost of recording with ``camera.opencv`` from the ``sim://`` pattern.

    uv run python bench/camera_throughput.py [--seconds 10] [--sizes 160x120,640x480,1280x720]
        [--fps 30] [--codec MJPG]

For each frame size the adapter records ``--seconds`` of the synthetic pattern at
``--fps`` into a temporary directory (capture thread: pattern synthesis; encoder thread:
``cv2.VideoWriter``; receipts into a context that counts them). Reports frames written,
frames dropped, process CPU time (all threads) per frame and as a share of one core, and
the file size per second of video. Prints figures; asserts nothing.
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


def bench(width: int, height: int, fps: float, codec: str, seconds: float) -> dict:
    from capa_camera.adapter import OpenCvCamera

    with tempfile.TemporaryDirectory() as tmp:
        params = OpenCvCamera.Params(
            source="sim://", width=width, height=height, fps=fps, codec=codec
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
        size = (Path(tmp) / "video" / f"cam.{params.container}").stat().st_size
    return {
        "frames": ctx.receipts,
        "dropped": snap.get("dropped", 0),
        "cpu_ms_per_frame": 1000 * cpu / max(1, ctx.receipts),
        "cpu_percent_of_one_core": 100 * cpu / wall,
        "mb_per_s": size / 1e6 / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sizes", default="160x120,640x480,1280x720")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--codec", default="MJPG")
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} "
        f"cores, sim:// at {args.fps:g} fps, {args.codec}, {args.seconds:g} s each"
    )
    print("| size | frames | dropped | CPU ms/frame | % of one core | MB/s of video |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        w, h = (int(x) for x in size.split("x"))
        r = bench(w, h, args.fps, args.codec, args.seconds)
        print(
            f"| {w}x{h} | {r['frames']} | {r['dropped']} | {r['cpu_ms_per_frame']:.2f} | "
            f"{r['cpu_percent_of_one_core']:.1f} | {r['mb_per_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
