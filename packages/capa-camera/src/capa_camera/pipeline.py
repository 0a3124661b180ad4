"""Capture and recording threads of one camera, off every event loop.

The capture thread reads frames from the source (paced or live), stamps them on the run
clock and hands them to the encoder thread through a bounded queue; a full queue drops
the frame and counts it (capture never waits for the encoder). The encoder thread writes
each frame to the video file and then emits its :class:`~capa.FrameReceipt`, so the
frames sidecar has exactly one row per frame in the file, in file order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capa import AdapterContext, DeviceEvent, EventSeverity, FrameReceipt, RunClock
from capa_camera.params import CameraParams
from capa_camera.sources import Source, SourceError

__all__ = ["CameraStats", "Pipeline"]

_END = object()
DROP_WARN_INTERVAL_S = 1.0


@dataclass
class CameraStats:
    """What one recording did."""

    captured: int = 0
    written: int = 0
    dropped: int = 0
    disconnects: int = 0
    reconnects: int = 0
    errors: int = 0
    source_ended: bool = False
    connected: bool = True

    def health(self) -> str:
        """``ok``, ``degraded`` (drops or reconnects) or ``failed`` (errors, lost source)."""
        if self.errors or not self.connected:
            return "failed"
        if self.dropped or self.disconnects:
            return "degraded"
        return "ok"


class Pipeline:
    """Capture + encoder threads for one run of one camera."""

    def __init__(
        self,
        name: str,
        p: CameraParams,
        source: Source,
        *,
        ctx: AdapterContext,
        video: Path | None,
        stop: threading.Event,
        on_done: Any,
    ) -> None:
        self.name = name
        self.p = p
        self.source = source
        self.ctx = ctx
        self.video = video
        self.stop = stop
        self.stats = CameraStats()
        self.latest: Any = None
        self.latest_idx = -1
        self.size: tuple[int, int] | None = None
        self._on_done = on_done
        self._queue: queue.Queue[Any] = queue.Queue(p.queue_frames)
        self._last_drop_warning = 0.0
        self._threads = [
            threading.Thread(target=self._capture, name=f"camera {name} capture"),
            threading.Thread(target=self._encode, name=f"camera {name} encoder"),
        ]

    def start(self) -> None:
        """Start both threads."""
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for both threads (after :attr:`stop` is set or the source ended)."""
        for thread in self._threads:
            thread.join(timeout_s)

    # ------------------------------------------------------------------ capture thread
    def _capture(self) -> None:
        clock = self.ctx.clock
        try:
            while not self.stop.is_set():
                requested = clock.now_ns()
                frame, due = self.source.read()
                received = clock.now_ns()
                if frame is None:
                    if self.stop.is_set():
                        break
                    if not self.source.reconnects:
                        self.stats.source_ended = True
                        self._event("camera.source_ended", "source has no more frames")
                        break
                    if not self._reconnect():
                        break
                    continue
                self.stats.captured += 1
                self.latest = frame
                latency = (received - (due if due is not None else requested)) / 1e9
                item = (received, RunClock.utc_now_iso(), max(0.0, latency), frame)
                try:
                    self._queue.put_nowait(item)
                except queue.Full:
                    self._dropped()
        except Exception as exc:  # a driver fault must still end the recording cleanly
            self.stats.errors += 1
            self._event("camera.error", f"capture failed: {exc}", EventSeverity.ERROR)
        finally:
            self._queue.put(_END)

    def _dropped(self) -> None:
        self.stats.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_INTERVAL_S:
            self._last_drop_warning = now
            self._event(
                "camera.frames_dropped",
                f"encoder behind: {self.stats.dropped} frames dropped so far",
                EventSeverity.WARNING,
                {"dropped": self.stats.dropped, "captured": self.stats.captured},
            )

    def _reconnect(self) -> bool:
        """Reopen a lost live source until it answers or the run stops."""
        self.stats.disconnects += 1
        self.stats.connected = False
        lost_ns = self.ctx.clock.now_ns()
        self._event(
            "camera.disconnected",
            f"source {self.p.source!r} stopped delivering frames; reconnecting",
            EventSeverity.WARNING,
            {"source": str(self.p.source), "frames": self.stats.captured},
        )
        self.source.release()
        attempts = 0
        while not self.stop.wait(self.p.reconnect_interval_s):
            attempts += 1
            try:
                self.source.open()
            except SourceError:
                continue
            self.stats.reconnects += 1
            self.stats.connected = True
            down_s = (self.ctx.clock.now_ns() - lost_ns) / 1e9
            self._event(
                "camera.reconnected",
                f"source {self.p.source!r} back after {down_s:.1f} s ({attempts} attempts)",
                EventSeverity.INFO,
                {"source": str(self.p.source), "attempts": attempts, "downtime_s": down_s},
            )
            return True
        return False

    # ------------------------------------------------------------------ encoder thread
    def _encode(self) -> None:
        writer: Any = None
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                t_ns, t_utc, latency, frame = item
                if self.video is not None:
                    writer = writer or self._open_writer(frame)
                    writer.write(self._fit(frame))
                idx = self.stats.written
                self.stats.written += 1
                self.latest_idx = idx
                self.ctx.emit(FrameReceipt(idx, t_ns, t_utc, latency))
        except Exception as exc:
            self.stats.errors += 1
            self._event("camera.error", f"recording failed: {exc}", EventSeverity.ERROR)
            self.stop.set()
            with contextlib.suppress(Exception):  # let the capture thread finish
                while self._queue.get_nowait() is not _END:
                    pass
        finally:
            if writer is not None:
                writer.release()
            self._on_done()

    def _open_writer(self, frame: Any) -> Any:
        import cv2

        assert self.video is not None
        height, width = frame.shape[:2]
        self.size = (width, height)
        self.video.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter.fourcc(*self.p.codec)
        writer = cv2.VideoWriter(str(self.video), fourcc, self.source.fps(), (width, height))
        if not writer.isOpened():
            raise SourceError(f"cannot write {self.video.name} with codec {self.p.codec!r}")
        return writer

    def _fit(self, frame: Any) -> Any:
        """Frames after a reconnect may come at another size; the file keeps the first."""
        import cv2

        assert self.size is not None
        if (frame.shape[1], frame.shape[0]) != self.size:
            return cv2.resize(frame, self.size)
        return frame

    def _event(
        self,
        kind: str,
        message: str,
        severity: EventSeverity = EventSeverity.INFO,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.ctx.emit(
            DeviceEvent(
                kind, f"{self.name}: {message}", severity, metadata or {}, self.ctx.clock.now_ns()
            )
        )
