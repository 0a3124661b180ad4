"""Frame sources: the ``sim://`` pattern, video files, local devices and network URLs.

Every source is read from the adapter's capture thread. ``read()`` blocks until the next
frame and returns it with the run-clock time it was due (paced sources) or ``None`` for
live sources, whose frames arrive when they arrive; ``(None, None)`` means the source has
nothing more: the end of a file, or a live source that dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from capa import DeviceError
from capa_camera.params import CameraParams, parse_sim_url
from capa_camera.pattern import draw_frame

__all__ = ["Frame", "Source", "SourceError", "make_source", "quiet_cv2"]

Frame = tuple[Any, int | None]
"""A BGR frame (or ``None``) and the run-clock time it was due (or ``None``)."""


def quiet_cv2() -> Any:
    """``cv2``, with OpenCV's and FFmpeg's console chatter turned down.

    A reconnect loop would otherwise print a "connection refused" line per attempt on
    stderr; the adapter reports what matters as events. Users can still raise the levels
    with ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL``.
    """
    import os

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    return cv2


class SourceError(DeviceError):
    """A source could not be opened."""


class Source(Protocol):
    """Something frames come from."""

    reconnects: bool
    """Whether losing it is worth reopening (live devices and network streams)."""

    def open(self) -> None:
        """Open the source. Raises :class:`SourceError`."""

    def read(self) -> Frame:
        """The next frame and when it was due; ``(None, None)`` at the end or on loss."""

    def fps(self) -> float:
        """Nominal frame rate (for the recording)."""

    def release(self) -> None:
        """Close the source (idempotent)."""


class _Paced:
    """Frame ``k`` is due at ``t0 + k / fps`` on the run clock; wait for it."""

    def __init__(self, rate: float, now_ns: Callable[[], int], stop: threading.Event) -> None:
        self.rate = rate
        self.now_ns = now_ns
        self.stop = stop
        self.t0: int | None = None
        self.k = 0

    def wait_next(self) -> int | None:
        if self.t0 is None:
            self.t0 = self.now_ns()
        due = self.t0 + round(self.k * 1e9 / self.rate)
        delay = (due - self.now_ns()) / 1e9
        if delay > 0 and self.stop.wait(delay):
            return None
        self.k += 1
        return due


class SimSource:
    """The synthetic moving pattern with the frame number drawn in."""

    reconnects = False

    def __init__(self, p: CameraParams, now_ns: Callable[[], int], stop: threading.Event):
        assert isinstance(p.source, str)
        self.p = p
        self.opts = parse_sim_url(p.source)
        self.pace = _Paced(p.fps, now_ns, stop)

    def open(self) -> None:
        """Nothing to open."""

    def read(self) -> Frame:
        """Frame number ``k`` at its due time (every ``drop_every``-th is skipped)."""
        while True:
            due = self.pace.wait_next()
            if due is None:
                return None, None
            number = self.pace.k - 1
            if self.opts.drop_every and number % self.opts.drop_every == self.opts.drop_every - 1:
                continue
            assert self.pace.t0 is not None
            t_s = (due - self.pace.t0) / 1e9
            frame = draw_frame(number, self.p.width, self.p.height, t_s, self.opts.speed_px_s)
            return frame, due

    def fps(self) -> float:
        """The configured rate."""
        return self.p.fps

    def release(self) -> None:
        """Nothing to release."""


class CvSource:
    """``cv2.VideoCapture`` on a file (paced at its own rate), device index or URL."""

    def __init__(self, p: CameraParams, now_ns: Callable[[], int], stop: threading.Event):
        self.p = p
        self.kind = p.kind
        self.reconnects = self.kind in {"device", "network"}
        self._now = now_ns
        self._stop = stop
        self._cap: Any = None
        self._pace: _Paced | None = None
        self._fps = p.fps

    def open(self) -> None:
        """Open the capture; a file is paced at the rate it declares."""
        cv2 = quiet_cv2()

        ms = int(self.p.timeout_s * 1000)
        props = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        if self.kind == "device":
            cap = cv2.VideoCapture(int(self.p.source), cv2.CAP_ANY, props)
        elif self.kind == "network":
            cap = cv2.VideoCapture(str(self.p.source), cv2.CAP_FFMPEG, props)
        else:
            cap = cv2.VideoCapture(str(self.p.source))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video source {self.p.source!r}")
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.p.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.p.height)
            cap.set(cv2.CAP_PROP_FPS, self.p.fps)
        if self.kind == "file":
            declared = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self._fps = declared if 0 < declared < 1000 else self.p.fps
            self._pace = _Paced(self._fps, self._now, self._stop)
        self._cap = cap

    def read(self) -> Frame:
        """The next frame (files: at its due time)."""
        if self._cap is None:
            return None, None
        due = None
        if self._pace is not None:
            due = self._pace.wait_next()
            if due is None:
                return None, None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None, None
        return frame, due

    def fps(self) -> float:
        """The file's declared rate, or the configured one."""
        return self._fps

    def release(self) -> None:
        """Release the capture."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def make_source(p: CameraParams, now_ns: Callable[[], int], stop: threading.Event) -> Source:
    """The source for ``p.source``."""
    if p.kind == "sim":
        return SimSource(p, now_ns, stop)
    return CvSource(p, now_ns, stop)
