"""Joining a camera's segments into one file, and listing them for ffmpeg.

``capa camera join BUNDLE`` writes one MJPEG AVI of the whole recording *outside* the
bundle (a sealed bundle is never changed): MJPG segments are copied frame by frame without
re-encoding; segments of other codecs are decoded and encoded as JPEG. ``capa camera
segments BUNDLE`` prints an ffmpeg concat list (``ffmpeg -f concat -safe 0 -i list.txt -c
copy out.avi`` joins them losslessly with ffmpeg).
"""

from __future__ import annotations

from pathlib import Path

from capa import BundleError
from capa_camera.avi import MjpegAviWriter, read_jpeg_chunks
from capa_camera.recording import UNFINISHED

__all__ = ["concat_list", "join_segments", "segment_files"]


def segment_files(bundle: Path, device: str) -> list[Path]:
    """The committed segments of camera ``device`` in ``bundle``, in recording order."""
    folder = bundle / "video" / device
    if not folder.is_dir():
        raise BundleError(f"{folder}: no video segments of camera {device!r} in {bundle}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and UNFINISHED not in p.name)
    if not files:
        raise BundleError(f"{folder}: camera {device!r} has no committed segment")
    return files


def concat_list(files: list[Path]) -> str:
    """An ffmpeg concat-demuxer list of ``files`` (absolute paths, quoted)."""
    lines = ["ffconcat version 1.0"]
    for path in files:
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def join_segments(bundle: Path, device: str, out: Path, quality: int = 95) -> int:
    """Write every frame of camera ``device`` to one MJPEG AVI ``out``; frames written.

    Raises:
        BundleError: no segments, or a segment that cannot be read.
    """
    from capa_camera.sources import quiet_cv2

    cv2 = quiet_cv2()
    files = segment_files(bundle, device)
    probe = cv2.VideoCapture(str(files[0]))
    try:
        fps = float(probe.get(cv2.CAP_PROP_FPS) or 0.0) or 15.0
        size = (int(probe.get(cv2.CAP_PROP_FRAME_WIDTH)), int(probe.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        probe.release()
    writer = MjpegAviWriter(out, size, fps, quality)
    try:
        for path in files:
            try:
                jpegs = read_jpeg_chunks(path)
            except ValueError:
                jpegs = None  # another codec: decode and encode below
            if jpegs is not None:
                for jpeg in jpegs:
                    writer.write_jpeg(jpeg)
                continue
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise BundleError(f"{path}: cannot be read as video")
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    writer.write(frame)
            finally:
                cap.release()
    except BaseException:
        writer.abandon()
        out.unlink(missing_ok=True)  # nothing half-written
        raise
    writer.close()
    return writer.frames
