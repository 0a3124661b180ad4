"""``camera.opencv``: record a camera, video file, network stream or test pattern.

The adapter streams: capture and encoding run on two threads of their own (see
:mod:`capa_camera.pipeline`), the adapter's coroutine only waits for them. The recording
goes to ``video/<name>.<container>`` in the run bundle, one :class:`~capa.FrameReceipt`
per recorded frame (the bundle writer makes them ``video/<name>.frames.parquet``), and a
``camera.summary`` event at the end lists file, codec, frame count and health.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from capa import (
    Acquisition,
    Adapter,
    AdapterContext,
    Command,
    CommandResult,
    ConfigModel,
    DeviceEvent,
    DiscoveredDevice,
    EventSeverity,
    FieldSpec,
    HandshakeResult,
)
from capa_camera.params import CameraParams
from capa_camera.pipeline import Pipeline
from capa_camera.sources import Source, make_source

__all__ = ["OpenCvCamera"]


class OpenCvCamera(Adapter):
    """A camera through OpenCV: device index, video file, MJPEG/RTSP URL or ``sim://``.

    Records a video file plus per-frame receipts; ``snapshot()`` returns the latest frame
    as JPEG (``{"jpeg": bytes, ...}``) for previews.
    """

    id = "camera.opencv"
    Params = CameraParams
    capabilities = frozenset({"records_video"})
    acquisition = Acquisition.STREAMED
    family = "camera"

    def __init__(self, name: str, params: ConfigModel) -> None:
        super().__init__(name, params)
        assert isinstance(params, CameraParams)
        self.p = params
        self._ctx: AdapterContext | None = None
        self._stop = threading.Event()
        self._source: Source | None = None
        self._pipeline: Pipeline | None = None
        self._last_summary: dict[str, Any] = {}

    # ------------------------------------------------------------ description
    @classmethod
    def resource_id(cls, params: ConfigModel) -> str:
        """``camera:<index | url | path | sim://...>`` (or ``camera:<resource>``)."""
        assert isinstance(params, CameraParams)
        return f"camera:{params.resource or params.source}"

    @classmethod
    def fields(cls, params: ConfigModel) -> Sequence[FieldSpec]:
        """A camera produces frames, not channel samples."""
        return ()

    def video_name(self) -> str:
        """File name of the recording inside ``video/``."""
        return f"{self.name}.{self.p.container}"

    # ------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Open the source (a source that cannot be opened fails here, naming it)."""
        if self._source is None:
            source = make_source(self.p, self._now_ns, self._stop)
            source.open()
            self._source = source

    async def close(self) -> None:
        """Stop any recording and release the source (idempotent)."""
        self._stop.set()
        if self._pipeline is not None:
            # Normally already joined by stream(); blocking here is fine on our worker thread.
            self._pipeline.join(10.0)
        source, self._source = self._source, None
        if source is not None:
            source.release()

    async def start(self, ctx: AdapterContext) -> None:
        """Remember the run context; recording starts in :meth:`stream`."""
        self._ctx = ctx
        self._stop.clear()  # the source's pacing waits on this same event
        if self._pipeline is not None:
            # A previous run consumed the source (pacing clock, end of a file): reopen it.
            self._pipeline = None
            if self._source is not None:
                self._source.release()
                self._source = None
        await self.open()

    async def stop(self) -> None:
        """End the recording; :meth:`stream` returns once the file is closed."""
        self._stop.set()

    async def stream(self, ctx: AdapterContext) -> None:
        """Run the capture and encoder threads until :meth:`stop` or the source ends."""
        assert self._source is not None, "stream before open"
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        video = None
        if self.p.record and ctx.bundle_path is not None:
            video = Path(ctx.bundle_path) / "video" / self.video_name()
        pipeline = Pipeline(
            self.name,
            self.p,
            self._source,
            ctx=ctx,
            video=video,
            stop=self._stop,
            on_done=lambda: loop.call_soon_threadsafe(done.set),
        )
        self._pipeline = pipeline
        pipeline.start()
        try:
            await done.wait()
        finally:
            self._stop.set()
            pipeline.join()
            ctx.emit(self._summary(pipeline, video, ctx))

    def run_summary(self) -> Mapping[str, Any]:
        """The last recording's entry in the manifest's ``cameras`` list.

        The same facts as the ``camera.summary`` event: file, codec, frame count, health.
        """
        return dict(self._last_summary)

    async def command(self, command: Command) -> CommandResult:
        """A camera takes no commands; every command is refused."""
        return CommandResult(False, f"{self.name}: camera.opencv takes no commands")

    async def snapshot(self) -> Mapping[str, Any]:
        """The latest frame as JPEG bytes, with counters (``jpeg`` is None before one)."""
        pipeline = self._pipeline
        if pipeline is None:
            return {"jpeg": None, "frames": 0, "dropped": 0, "connected": self._source is not None}
        jpeg = None
        frame = pipeline.latest
        if frame is not None:
            import cv2

            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.p.jpeg_quality])
            jpeg = buf.tobytes() if ok else None
        s = pipeline.stats
        return {
            "jpeg": jpeg,
            "frame_idx": pipeline.latest_idx,
            "frames": s.written,
            "dropped": s.dropped,
            "reconnects": s.reconnects,
            "connected": s.connected,
        }

    @classmethod
    async def discover(cls) -> Sequence[DiscoveredDevice]:
        """Local video devices (Linux: ``/sys/class/video4linux``); nothing is opened."""
        from capa_camera.discovery import discover_v4l2

        return discover_v4l2(cls.id)

    @classmethod
    async def handshake(cls, params: ConfigModel) -> HandshakeResult:
        """Open the source, grab one frame, close it."""
        assert isinstance(params, CameraParams)
        stop = threading.Event()
        source = make_source(params, time.monotonic_ns, stop)
        try:
            source.open()
            frame, _ = source.read()
        except Exception as exc:
            return HandshakeResult(False, f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            source.release()
        if frame is None:
            return HandshakeResult(False, f"{params.source!r} opened but gave no frame")
        height, width = frame.shape[:2]
        return HandshakeResult(
            True, f"{width}x{height} frames from {params.source!r}", {"kind": params.kind}
        )

    # ------------------------------------------------------------ internals
    def _now_ns(self) -> int:
        return self._ctx.clock.now_ns() if self._ctx is not None else time.monotonic_ns()

    def _summary(self, pipeline: Pipeline, video: Path | None, ctx: AdapterContext) -> DeviceEvent:
        s = pipeline.stats
        health = s.health()
        file = f"video/{video.name}" if video is not None else None
        meta = {
            "camera": self.name,
            "file": file,
            "codec": self.p.codec,
            "container": self.p.container,
            "frames": s.written,
            "captured": s.captured,
            "dropped": s.dropped,
            "disconnects": s.disconnects,
            "reconnects": s.reconnects,
            "source_kind": self.p.kind,
            "source_ended": s.source_ended,
            "width": pipeline.size[0] if pipeline.size else None,
            "height": pipeline.size[1] if pipeline.size else None,
            "fps": self._source.fps() if self._source else self.p.fps,
            "health": health,
        }
        self._last_summary = meta
        severity = EventSeverity.INFO if health == "ok" else EventSeverity.WARNING
        return DeviceEvent(
            "camera.summary",
            f"{self.name}: {s.written} frames to {file or '(not recorded)'}, "
            f"{s.dropped} dropped, {s.reconnects} reconnects, health {health}",
            severity,
            meta,
            ctx.clock.now_ns(),
        )
