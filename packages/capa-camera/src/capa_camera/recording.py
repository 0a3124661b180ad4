"""The recording of one camera, written so that ``kill -9`` loses at most one segment.

A camera writes ``video/<name>/000000.<container>``, ``000001.<container>``, ... — short
*segments* of ``segment_s`` seconds (default 1 s) — and its own frames table
``video/<name>.frames.in-flight.arrows`` (one row per frame: ``frame_idx``, ``t_mono_ns``,
``t_utc``, ``capture_latency_s``, ``segment``, ``segment_frame``), which finalize turns into
``video/<name>.frames.parquet`` like every in-flight Arrow stream. A segment is committed
in this order:

1. its frames go to ``<seq>.in-flight.<container>`` (MJPG in AVI: JPEGs from
   ``cv2.imencode`` through :class:`~capa_camera.avi.MjpegAviWriter`; other codecs:
   ``cv2.VideoWriter``);
2. at the segment's end the file is completed (index, headers) and fsynced;
3. the segment's rows are appended to the frames table as one batch and fsynced;
4. the file is renamed to ``<seq>.<container>`` and the folder fsynced.

Core's finalize (``capa.bundle.unfinished``) removes a file still named ``*.in-flight.*``
and drops rows whose ``segment`` file is not in the bundle (the table declares that column
in its schema metadata, ``capa.files_column``). So wherever a kill lands — mid-segment,
between the steps, mid-batch (a torn batch is dropped by finalize) — the sealed bundle
holds exactly the committed segments and exactly their rows, and what is lost is the
segment being written: at most ``segment_s`` plus the encoder's queue.

Why segments of a normal container, not one stream decodable when truncated: the frames
table and the video are two files, and they can only be made to agree after a kill by a
commit unit that finalize understands without knowing video — a whole file, by name. A
single MJPEG elementary stream would leave frames after the last durable row that only a
video-aware tool could cut off. Measured per frame on this machine (``sim://`` pattern,
300 frames; OpenCV 5.0, libjpeg-turbo): one AVI through ``cv2.VideoWriter`` (MJPG) 0.17 /
1.64 / 4.32 ms at 160x120 / 640x480 / 1280x720; the same cut into 1 s AVI segments,
fsynced and renamed, 0.20 / 1.92 / 4.60 ms (+6..17 %); ``cv2.imencode`` JPEGs appended to
one raw ``.mjpeg`` stream 0.07 / 0.86 / 2.02 ms, but at twice the bytes per frame (quality
75) and with no frame rate or index for players. So: segments, each a normal AVI that plays
anywhere, and for the default MJPG the cheap encoder — ``cv2.imencode`` into our own AVI
writer, 0.75 / 2.24 ms per frame at 640x480 / 1280x720 including segmenting and fsync,
below what one ``cv2.VideoWriter`` file cost before; it also sees every write error,
which ``cv2.VideoWriter`` swallows. Other codecs keep ``cv2.VideoWriter`` per segment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from capa_camera.avi import MjpegAviWriter
from capa_camera.sources import SourceError, quiet_cv2

__all__ = ["FRAMES_SCHEMA_METADATA", "FrameRow", "SegmentedRecorder", "frames_schema"]

UNFINISHED: Final = ".in-flight."
"""Marks a file that is not finished yet (core's finalize removes such leftovers)."""

# capa.written_by = producer: this table never passes through the bundle writer, so the
# run's accounting leaves it to the camera (captured = frames + dropped + lost_uncommitted).
FRAMES_SCHEMA_METADATA: Final = {
    b"capa.table": b"frames",
    b"capa.files_column": b"segment",
    b"capa.written_by": b"producer",
}
"""``segment`` names a file of the bundle: finalize drops rows whose segment is gone."""


def frames_schema() -> Any:
    """Arrow schema of ``video/<name>.frames`` as the camera writes it."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("frame_idx", pa.int64(), nullable=False),
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field("t_utc", pa.string()),
            pa.field("capture_latency_s", pa.float64()),
            pa.field("segment", pa.string()),
            pa.field("segment_frame", pa.int64()),
        ],
        metadata=FRAMES_SCHEMA_METADATA,
    )


def _column(values: list[Any], typ: Any) -> Any:
    """One frames-table column from Python values, built from buffers.

    Not ``pyarrow.array()``: it imports pandas whenever pandas is installed, which took
    seconds on this (encoding) thread in the middle of a run and delayed segment commits.
    """
    import numpy as np
    import pyarrow as pa

    if pa.types.is_string(typ):
        encoded = [str(v).encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(typ, len(encoded), buffers, null_count=0)
    dtype = np.int64 if pa.types.is_int64(typ) else np.float64
    data = np.asarray(values, dtype=dtype)
    return pa.Array.from_buffers(typ, len(data), [None, pa.py_buffer(data)], null_count=0)


class _Writer(Protocol):
    def write(self, frame: Any) -> None: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...


class _CvWriter:
    """``cv2.VideoWriter`` for codecs and containers other than MJPG in AVI."""

    def __init__(self, path: Path, codec: str, size: tuple[int, int], fps: float) -> None:
        cv2 = quiet_cv2()
        self.path = path
        self.frames = 0
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
        if not self._writer.isOpened():
            self._writer.release()
            raise SourceError(f"cannot write {path.parent.name}/{path.name} with codec {codec!r}")

    def write(self, frame: Any) -> None:
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Release, fsync, and check the frame count the container declares.

        ``cv2.VideoWriter`` reports no write errors; the count read back from the
        container catches a file that lost its index or header (a full disk), though not
        every torn frame inside it — the MJPG/AVI path writes through ``os.write``.
        """
        cv2 = quiet_cv2()
        self._writer.release()
        _fsync_path(self.path)
        cap = cv2.VideoCapture(str(self.path))
        try:
            found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if found != self.frames:
            raise OSError(
                f"{self.path.parent.name}/{self.path.name} declares {found} frames after "
                f"closing, {self.frames} were written (disk full or I/O error?)"
            )

    def abandon(self) -> None:
        self._writer.release()


@dataclass(frozen=True, slots=True)
class FrameRow:
    """One recorded frame: its row in the frames table."""

    frame_idx: int
    t_mono_ns: int
    t_utc: str
    capture_latency_s: float
    segment: str
    segment_frame: int


@dataclass
class Segment:
    """A committed segment (for the manifest's ``cameras`` entry)."""

    file: str
    frames: int
    first_frame_idx: int


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FramesTable:
    """The camera's own append-only Arrow IPC stream of frame rows (one thread only)."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = path
        self.schema = frames_schema()
        # O_EXCL: a second writer of the same table must fail, not interleave.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._sink = pa.OSFile(str(path), "ab")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._closed = False
        self.sync()
        _fsync_path(path.parent)  # the table's name itself must survive a kill

    def append(self, rows: list[FrameRow]) -> None:
        """Append ``rows`` as one batch and make it durable before returning."""
        import pyarrow as pa

        batch = pa.RecordBatch.from_arrays(
            [_column([getattr(r, f.name) for r in rows], f.type) for f in self.schema],
            schema=self.schema,
        )
        self._writer.write_batch(batch)
        self.sync()

    def sync(self) -> None:
        """Make what was appended durable."""
        self._sink.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        """Write the end-of-stream marker, fsync, close (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
            self.sync()
        finally:
            self._sink.close()
            os.close(self._fd)


@dataclass
class SegmentedRecorder:
    """Writes frames into segments of ``segment_s`` and commits each with its rows.

    Args:
        video_dir: the bundle's ``video/`` folder.
        name: the camera's name (folder ``video/<name>/``, table ``video/<name>.frames``).
        codec: FourCC for ``cv2.VideoWriter``.
        container: file extension (``avi``, ``mp4``, ``mkv``).
        fps: frame rate written into each segment.
        segment_s: seconds of run-clock time a segment stays open at most.
        quality: JPEG quality of MJPG recordings.
    """

    video_dir: Path
    name: str
    codec: str
    container: str
    fps: float
    segment_s: float
    quality: int = 80
    size: tuple[int, int] | None = None
    segments: list[Segment] = field(default_factory=list)
    frames: int = 0
    _table: FramesTable | None = None
    _writer: _Writer | None = None
    _inflight: Path | None = None
    _rows: list[FrameRow] = field(default_factory=list)
    _opened_ns: int = 0

    @property
    def folder(self) -> Path:
        """``video/<name>/``, where the segments are."""
        return self.video_dir / self.name

    @property
    def table_path(self) -> Path:
        """The frames table while it is being written."""
        return self.video_dir / f"{self.name}.frames.in-flight.arrows"

    def due_in_s(self, now_ns: int) -> float | None:
        """Seconds until the open segment must be committed (``None``: none is open)."""
        if self._writer is None:
            return None
        return max(0.0, (self._opened_ns + self.segment_s * 1e9 - now_ns) / 1e9)

    def write(self, frame: Any, t_ns: int, t_utc: str, latency_s: float, now_ns: int) -> int:
        """Add one frame to the open segment (opening one if needed); its ``frame_idx``."""
        if isinstance(self._writer, MjpegAviWriter) and self._writer.full:
            self.commit()  # a long segment_s at a high rate: keep each AVI within 1 GiB
        if self._writer is None:
            self._open_segment(frame, now_ns)
        assert self._writer is not None
        self._writer.write(self._fit(frame))
        idx = self.frames
        seq = len(self.segments)
        self._rows.append(
            FrameRow(idx, t_ns, t_utc, latency_s, self._final_rel(seq), len(self._rows))
        )
        self.frames += 1
        return idx

    def commit(self) -> None:
        """Close, fsync, record and rename the open segment (no-op if none is open)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        assert self._inflight is not None
        rows, self._rows = self._rows, []
        inflight, self._inflight = self._inflight, None
        seq = len(self.segments)
        final = self.folder / f"{seq:06d}.{self.container}"
        writer.close()  # complete, fsynced, and holding every frame, or OSError
        if self._table is None:
            self._table = FramesTable(self.table_path)
        self._table.append(rows)  # durable before the rename: see the module docstring
        os.replace(inflight, final)
        _fsync_path(self.folder)
        rel = f"{self.video_dir.name}/{rows[0].segment}"
        self.segments.append(Segment(rel, len(rows), rows[0].frame_idx))

    def close(self) -> None:
        """Commit the open segment and end the frames table cleanly."""
        try:
            self.commit()
        finally:
            if self._table is not None:
                self._table.close()

    def abandon(self) -> None:
        """After a failure: release the writer, leave the unfinished file for finalize."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.abandon()
        finally:
            if self._table is not None:
                self._table.close()

    # ------------------------------------------------------------------ internals
    def _final_rel(self, seq: int) -> str:
        return f"{self.name}/{seq:06d}.{self.container}"

    def _open_segment(self, frame: Any, now_ns: int) -> None:
        if self.size is None:
            height, width = frame.shape[:2]
            self.size = (width, height)
        seq = len(self.segments)
        if seq == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            _fsync_path(self.video_dir)
        path = self.folder / f"{seq:06d}{UNFINISHED}{self.container}"
        writer: _Writer
        if self.codec.upper() == "MJPG" and self.container == "avi":
            writer = MjpegAviWriter(path, self.size, self.fps, self.quality)
        else:
            writer = _CvWriter(path, self.codec, self.size, self.fps)
        self._writer, self._inflight, self._opened_ns = writer, path, now_ns

    def _fit(self, frame: Any) -> Any:
        """Frames after a reconnect may come at another size; the recording keeps the first."""
        import cv2

        assert self.size is not None
        if (frame.shape[1], frame.shape[0]) != self.size:
            return cv2.resize(frame, self.size)
        return frame
