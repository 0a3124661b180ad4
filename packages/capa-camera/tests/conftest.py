"""Shared helpers: a collecting AdapterContext, video decoding, leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capa import DeviceEvent, FrameReceipt, RunClock


class Collector:
    """A minimal AdapterContext recording every emission; ``emit_delay_s`` slows it."""

    def __init__(self, bundle: Path | None, emit_delay_s: float = 0.0) -> None:
        self.device = "cam"
        self.clock = RunClock()
        self.bundle_path = bundle
        self.emitted: list = []
        self.emit_delay_s = emit_delay_s
        self._lock = threading.Lock()

    def emit(self, emission) -> None:
        if self.emit_delay_s and isinstance(emission, FrameReceipt):
            time.sleep(self.emit_delay_s)  # a writer that is behind (backpressure)
        with self._lock:
            self.emitted.append(emission)

    def latest(self, channel: str) -> float | None:
        return None

    def receipts(self) -> list[FrameReceipt]:
        return [e for e in self.emitted if isinstance(e, FrameReceipt)]

    def events(self, kind: str | None = None) -> list[DeviceEvent]:
        return [e for e in self.emitted if isinstance(e, DeviceEvent) and kind in (None, e.kind)]


def decode_video(path: Path) -> list[int]:
    """Frame numbers of every frame in a recorded video (decoded back with OpenCV)."""
    import cv2

    from capa_camera.pattern import decode_frame_number

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    numbers = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            numbers.append(decode_frame_number(frame))
    finally:
        cap.release()
    return numbers


def frame_rows(bundle: Path, name: str = "cam") -> list[dict]:
    """Rows of the camera's frames table (in flight, as a clean stop leaves it, or sealed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sealed = bundle / "video" / f"{name}.frames.parquet"
    if sealed.exists():
        return pq.read_table(sealed).to_pylist()
    stream = bundle / "video" / f"{name}.frames.in-flight.arrows"
    with pa.memory_map(str(stream)) as source:
        return pa.ipc.open_stream(source).read_all().to_pylist()


def decode_segments(bundle: Path, name: str = "cam") -> tuple[list[str], list[int]]:
    """Every segment file of a camera in order, and the frame numbers decoded from them."""
    segments = sorted((bundle / "video" / name).glob("*"))
    files = [f"{name}/{p.name}" for p in segments]
    return files, [n for p in segments for n in decode_video(p)]


def record(cam, ctx: Collector, seconds: float, during: Callable[[], None] | None = None) -> dict:
    """open → start → stream for ``seconds`` (or until the source ends) → stop → close."""

    async def body() -> dict:
        await cam.open()
        await cam.start(ctx)
        task = asyncio.ensure_future(cam.stream(ctx))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), seconds)
        snap = dict(await cam.snapshot())
        snap["ended_by_itself"] = task.done()
        await cam.stop()
        await asyncio.wait_for(task, 10)
        await cam.close()
        return snap

    return asyncio.run(body())


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    """Every test leaves no capture, encoder or server thread behind."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    extra: list[threading.Thread] = []
    while time.monotonic() < deadline:
        extra = [
            t
            for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and not t.daemon
        ]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {[t.name for t in extra]}")
