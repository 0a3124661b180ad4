"""``camera.opencv``: record a camera, video file, network stream or test pattern.

The adapter streams: capture and encoding run on two threads of their own (see
:mod:`capa_camera.pipeline`), the adapter's coroutine only waits for them. The recording
goes to ``video/<name>/<segment>.<container>`` in the run bundle, with one row per frame in
``video/<name>.frames`` (see :mod:`capa_camera.recording`: at most one segment,
``segment_s``, is lost to a hard kill), and a ``camera.summary`` event at the end lists
folder, codec, frame and segment counts and health. A failure of capture or recording
(a full disk) is raised from :meth:`OpenCvCamera.stream` as a :class:`~capa.DeviceError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capa import (
    Acquisition,
    Adapter,
    AdapterContext,
    Command,
    CommandResult,
    ConfigModel,
    DeviceError,
    DeviceEvent,
    DiscoveredDevice,
    EventSeverity,
    FieldSpec,
    HandshakeResult,
)
from capa_camera.params import CameraParams
from capa_camera.sources import Source, make_source

if TYPE_CHECKING:
    from capa_camera.pipeline import Pipeline
    from capa_camera.recording import SegmentedRecorder

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

    def video_folder(self) -> str:
        """Folder of the recording's segments inside the bundle."""
        return f"video/{self.name}"

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
        # Imported here, not with the plugin: `capa validate` and `capa plugins list` load
        # every plugin and never record video.
        import asyncio

        from capa_camera.pipeline import Pipeline
        from capa_camera.recording import SegmentedRecorder

        assert self._source is not None, "stream before open"
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        recorder = None
        if self.p.record and ctx.bundle_path is not None:
            recorder = SegmentedRecorder(
                Path(ctx.bundle_path) / "video",
                self.name,
                codec=self.p.codec,
                container=self.p.container,
                fps=self._source.fps(),
                segment_s=self.p.segment_s,
                quality=self.p.jpeg_quality,
            )
        pipeline = Pipeline(
            self.name,
            self.p,
            self._source,
            ctx=ctx,
            recorder=recorder,
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
            summary = self._summary(pipeline, recorder, ctx)
        failure = pipeline.failure
        try:
            ctx.emit(summary)
        except Exception as exc:
            failure = failure or exc
        if failure is not None:
            raise DeviceError(f"{self.name}: {_describe(failure)}") from failure

    def run_summary(self) -> Mapping[str, Any]:
        """The last recording's entry in the manifest's ``cameras`` list.

        The facts of the ``camera.summary`` event (folder, codec, frames, health), with
        ``segments`` the list of committed segment files and their frame counts.
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

    def _summary(
        self, pipeline: Pipeline, recorder: SegmentedRecorder | None, ctx: AdapterContext
    ) -> DeviceEvent:
        s = pipeline.stats
        health = s.health()
        folder = self.video_folder() if recorder is not None else None
        segments = recorder.segments if recorder is not None else []
        # Frames that reached a segment the failure kept from being committed are not in
        # the bundle: they are counted apart, never as recorded.
        frames = sum(g.frames for g in segments) if recorder is not None else s.written
        meta = {
            "camera": self.name,
            "folder": folder,
            "frames_table": f"{folder}.frames.parquet" if folder else None,
            "segments": len(segments),
            "segment_s": self.p.segment_s,
            "codec": self.p.codec,
            "container": self.p.container,
            "frames": frames,
            "captured": s.captured,
            "dropped": s.dropped,
            "lost_uncommitted": s.written - frames + s.discarded,
            "disconnects": s.disconnects,
            "reconnects": s.reconnects,
            "source_kind": self.p.kind,
            "source_ended": s.source_ended,
            "width": pipeline.size[0] if pipeline.size else None,
            "height": pipeline.size[1] if pipeline.size else None,
            "fps": self._source.fps() if self._source else self.p.fps,
            "health": health,
        }
        if pipeline.failure is not None:
            meta["error"] = _describe(pipeline.failure)
        # The manifest lists every segment; the event carries the count only.
        self._last_summary = {
            **meta,
            "segments": [{"file": g.file, "frames": g.frames} for g in segments],
        }
        severity = EventSeverity.INFO if health == "ok" else EventSeverity.WARNING
        return DeviceEvent(
            "camera.summary",
            f"{self.name}: {s.written} frames in {len(segments)} segments to "
            f"{folder or '(not recorded)'}, "
            f"{s.dropped} dropped, {s.reconnects} reconnects, health {health}",
            severity,
            meta,
            ctx.clock.now_ns(),
        )


def _describe(exc: BaseException) -> str:
    """One line for a recording failure; a full disk is named as such."""
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"recording stopped: the disk is full ({exc.strerror})"
    return f"recording stopped: {type(exc).__name__}: {exc}"
