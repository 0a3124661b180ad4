"""Capture and recording threads of one camera, off every event loop.

The capture thread reads frames from the source (paced or live), stamps them on the run
clock and hands them to the encoder thread through a bounded queue; a full queue drops
the frame and counts it (capture never waits for the encoder). The encoder thread writes
each frame into the open segment of a :class:`~capa_camera.recording.SegmentedRecorder`
(which commits a segment with its frame rows every ``segment_s``), or, when nothing is
recorded to a bundle, emits a :class:`~capa.FrameReceipt` per frame.

A failure on either thread (a source that breaks, a full disk) is kept in
:attr:`Pipeline.failure`, reported as a ``camera.error`` event and ends the recording;
the adapter raises it from ``stream()``, so it reaches the run through the device's
failure policy — never as a traceback on a thread.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from capa import AdapterContext, DeviceEvent, EventSeverity, FrameReceipt, RunClock
from capa_camera.params import CameraParams
from capa_camera.recording import SegmentedRecorder
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
    discarded: int = 0
    """Frames captured but never written because the recording had failed."""
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
        recorder: SegmentedRecorder | None,
        stop: threading.Event,
        on_done: Any,
    ) -> None:
        self.name = name
        self.p = p
        self.source = source
        self.ctx = ctx
        self.recorder = recorder
        self.failure: BaseException | None = None
        """The first failure of capture or recording (``stream()`` raises it)."""
        self.unreported: list[str] = []
        self.stop = stop
        self.stats = CameraStats()
        self.latest: Any = None
        self.latest_idx = -1
        self.size: tuple[int, int] | None = None
        self._on_done = on_done
        self._queue: queue.Queue[Any] = queue.Queue(p.queue_frames)
        self._last_drop_warning = 0.0
        self._started = False  # camera.recording_started was emitted (with the first frame)
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
            self._fail("capture", exc)
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
        recorder = self.recorder
        clock = self.ctx.clock
        ended = False
        in_hand = False  # a frame taken from the queue and not yet written
        try:
            while True:
                timeout = recorder.due_in_s(clock.now_ns()) if recorder else None
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:  # the open segment's time is up: commit it
                    assert recorder is not None
                    recorder.commit()
                    continue
                if item is _END:
                    ended = True
                    break
                t_ns, t_utc, latency, frame = item
                in_hand = True
                if recorder is not None:
                    idx = self._record(recorder, frame, t_ns, t_utc, latency)
                else:
                    idx = self.stats.written
                    self.ctx.emit(FrameReceipt(idx, t_ns, t_utc, latency))
                self.stats.written += 1
                in_hand = False
                self.latest_idx = idx
            if recorder is not None:
                recorder.close()
                self._recording_stopped(recorder, None)
        except Exception as exc:
            self.stats.discarded += in_hand
            self._fail("recording", exc)
            if recorder is not None:
                self._cleanup(recorder.abandon)
                self._recording_stopped(recorder, exc)
            while not ended:  # take what capture still queues until it has finished
                ended = self._queue.get() is _END
                self.stats.discarded += not ended
        finally:
            self._on_done()

    def _record(
        self, recorder: SegmentedRecorder, frame: Any, t_ns: int, t_utc: str, latency: float
    ) -> int:
        """Write one frame (committing a segment whose time is up); its ``frame_idx``."""
        clock = self.ctx.clock
        if recorder.due_in_s(clock.now_ns()) == 0.0:
            recorder.commit()
        idx = recorder.write(frame, t_ns, t_utc, latency, clock.now_ns())
        self.size = recorder.size
        if not self._started:
            self._started = True
            self._recording_started(recorder, t_ns)
        return idx

    def _recording_started(self, recorder: SegmentedRecorder, t_ns: int) -> None:
        """``camera.recording_started`` (seed 003): the first frame is in the first segment."""
        width, height = recorder.size or (None, None)
        self._event(
            "camera.recording_started",
            f"recording to {recorder.video_dir.name}/{recorder.name}/ "
            f"({self.p.codec} {self.p.container}, segments of {self.p.segment_s:g} s)",
            EventSeverity.INFO,
            {
                "camera": self.name,
                "folder": f"{recorder.video_dir.name}/{recorder.name}",
                "codec": self.p.codec,
                "container": self.p.container,
                "segment_s": self.p.segment_s,
                "fps": recorder.fps,
                "width": width,
                "height": height,
                "first_frame_t_mono_ns": t_ns,
            },
        )

    def _recording_stopped(
        self, recorder: SegmentedRecorder, failure: BaseException | None
    ) -> None:
        """``camera.recording_stopped`` (seed 003) with the committed frames and segments.

        Only after a ``recording_started``. Frames written into a segment that a failure
        kept from being committed are not in the bundle: ``frames`` counts only committed
        ones, ``lost_uncommitted`` the rest.
        """
        if not self._started:
            return
        committed = sum(g.frames for g in recorder.segments)
        if failure is not None:
            why = "failed"
        elif self.stats.source_ended:
            why = "source_ended"
        else:
            why = "stopped"
        meta: dict[str, Any] = {
            "camera": self.name,
            "folder": f"{recorder.video_dir.name}/{recorder.name}",
            "frames": committed,
            "segments": len(recorder.segments),
            "lost_uncommitted": recorder.frames - committed,
            "dropped": self.stats.dropped,
            "reason": why,
        }
        if failure is not None:
            meta["error"] = f"{type(failure).__name__}: {failure}"
        self._event(
            "camera.recording_stopped",
            f"recording {why}: {committed} frames in {len(recorder.segments)} segments",
            EventSeverity.INFO if failure is None else EventSeverity.WARNING,
            meta,
        )

    def _fail(self, what: str, exc: BaseException) -> None:
        """Record a failure of this recording (the adapter raises it from ``stream()``)."""
        self.stats.errors += 1
        if self.failure is None:
            self.failure = exc
        self.stop.set()
        self._event("camera.error", f"{what} failed: {exc}", EventSeverity.ERROR)

    def _cleanup(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # a second failure is reported, the first one decides
            self.stats.errors += 1
            self._event("camera.error", f"cleanup failed: {exc}", EventSeverity.ERROR)

    def _event(
        self,
        kind: str,
        message: str,
        severity: EventSeverity = EventSeverity.INFO,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        event = DeviceEvent(
            kind, f"{self.name}: {message}", severity, metadata or {}, self.ctx.clock.now_ns()
        )
        try:
            self.ctx.emit(event)
        except Exception as exc:
            # The run can no longer take events (its writer failed): that failure is the
            # run's to report; here it must not become a traceback on this thread.
            self.unreported.append(f"{kind}: {message} (not logged: {exc})")
            if self.failure is None:
                self.failure = exc
            self.stop.set()
