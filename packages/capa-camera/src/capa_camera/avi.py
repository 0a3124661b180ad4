"""A minimal Motion-JPEG AVI writer on a file descriptor of our own.

Used for the default recording (codec ``MJPG``, container ``avi``): frames are encoded
with ``cv2.imencode`` (libjpeg-turbo) and appended as ``00dc`` chunks, the headers and the
``idx1`` index are completed on :meth:`MjpegAviWriter.close`, and every byte goes through
``os.write`` — so a full disk or an I/O error raises ``OSError`` here (``cv2.VideoWriter``
drops write errors silently) and :meth:`MjpegAviWriter.close` can ``fsync`` the file.
Layout (RIFF AVI 1.0, one video stream)::

    RIFF 'AVI ' [ LIST 'hdrl' [ avih, LIST 'strl' [ strh, strf ] ], LIST 'movi' [ 00dc ... ],
                  idx1 ]
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Final

__all__ = ["MAX_MOVI_BYTES", "MjpegAviWriter", "read_jpeg_chunks"]

_AVIF_HASINDEX: Final = 0x10
_AVIIF_KEYFRAME: Final = 0x10
MAX_MOVI_BYTES: Final = 1 << 30
"""Frame data per file before the caller must start another (AVI 1.0 sizes are 32-bit)."""
_HDRL_BYTES: Final = 4 + (8 + 56) + (8 + 4 + (8 + 56) + (8 + 40))
"""Payload of LIST 'hdrl': its type, avih, and LIST 'strl' with strh and strf."""


class MjpegAviWriter:
    """Write BGR frames as an MJPEG AVI (``write`` per frame, ``close`` once).

    Args:
        path: the file to create (must not exist).
        size: ``(width, height)`` of every frame.
        fps: frame rate recorded in the headers.
        quality: JPEG quality (10-100).
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float, quality: int) -> None:
        self.path = path
        self.size = size
        self.fps = fps
        self.quality = quality
        self._index: list[tuple[int, int]] = []  # (offset from 'movi', size) per frame
        self._movi_bytes = 4  # the 'movi' list type
        self._max_chunk = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self._put(self._headers(0))
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return len(self._index)

    @property
    def full(self) -> bool:
        """Whether the file holds :data:`MAX_MOVI_BYTES` of frames (close it now)."""
        return self._movi_bytes >= MAX_MOVI_BYTES

    def write(self, frame: Any) -> None:
        """Encode and append one frame (OSError if it cannot be written)."""
        import cv2

        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"{self.path.name}: JPEG encoding failed")
        self.write_jpeg(buf.tobytes())

    def write_jpeg(self, data: bytes) -> None:
        """Append one already encoded JPEG frame as it is."""
        chunk = b"00dc" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
        self._put(chunk)
        self._index.append((self._movi_bytes, len(data)))
        self._movi_bytes += len(chunk)
        self._max_chunk = max(self._max_chunk, len(data))

    def close(self) -> None:
        """Append the index, complete the headers and fsync; then close the file."""
        try:
            idx = b"".join(
                b"00dc" + struct.pack("<III", _AVIIF_KEYFRAME, offset, size)
                for offset, size in self._index
            )
            self._put(b"idx1" + struct.pack("<I", len(idx)) + idx)
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._put(self._headers(len(self._index)))
            os.fsync(self._fd)
        finally:
            os.close(self._fd)

    def abandon(self) -> None:
        """Close without completing the file (it stays unfinished)."""
        os.close(self._fd)

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _headers(self, frames: int) -> bytes:
        """Everything before the first frame chunk, for ``frames`` frames."""
        width, height = self.size
        # The rate as a fraction: microsecond-exact for any fps up to the params' limit.
        scale, rate = 1_000_000, round(self.fps * 1_000_000)
        usec = round(1e6 / self.fps)
        buffer = self._max_chunk + 8
        avih = struct.pack(
            "<14I", usec, 0, 0, _AVIF_HASINDEX, frames, 0, 1, buffer, width, height, 0, 0, 0, 0
        )
        strh = b"vidsMJPG" + struct.pack(
            "<IHHIIIIIIIIhhhh", 0, 0, 0, 0, scale, rate, 0, frames, buffer, 0xFFFFFFFF, 0,
            0, 0, width, height,
        )  # fmt: skip
        strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG",
                           width * height * 3, 0, 0, 0, 0)  # fmt: skip
        strl = b"LIST" + struct.pack("<I", 4 + 64 + 48) + b"strl"
        strl += b"strh" + struct.pack("<I", 56) + strh + b"strf" + struct.pack("<I", 40) + strf
        hdrl = b"LIST" + struct.pack("<I", _HDRL_BYTES) + b"hdrl"
        hdrl += b"avih" + struct.pack("<I", 56) + avih + strl
        idx1 = 8 + 16 * frames
        riff_size = 4 + len(hdrl) + 8 + self._movi_bytes + (idx1 if frames else 0)
        movi = b"LIST" + struct.pack("<I", self._movi_bytes) + b"movi"
        return b"RIFF" + struct.pack("<I", riff_size) + b"AVI " + hdrl + movi


def read_jpeg_chunks(path: Path) -> list[bytes]:
    """The JPEG frames of an MJPEG AVI, in file order, as stored (no decoding).

    Raises:
        ValueError: not a RIFF AVI, or a video chunk that is not a JPEG image.
    """
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"AVI ":
        raise ValueError(f"{path.name} is not an AVI file")
    frames: list[bytes] = []
    pos, end = 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    while pos + 8 <= end:
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"LIST" and data[pos + 8 : pos + 12] == b"movi":
            sub, sub_end = pos + 12, min(end, pos + 8 + size)
            while sub + 8 <= sub_end:
                sid, ssize = data[sub : sub + 4], struct.unpack_from("<I", data, sub + 4)[0]
                if sid[2:] in (b"dc", b"db"):
                    jpeg = data[sub + 8 : sub + 8 + ssize]
                    if jpeg[:2] != b"\xff\xd8":
                        raise ValueError(f"{path.name}: a video chunk is not a JPEG image")
                    frames.append(jpeg)
                sub += 8 + ssize + (ssize & 1)
        pos += 8 + size + (size & 1)
    return frames
