"""Crash-safe file replacement: temp file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_write_bytes", "fsync_dir", "temp_path_for"]

TEMP_PREFIX = ".capa-tmp-"
"""Prefix of temporary files; finalize removes leftovers of an interrupted write."""


def temp_path_for(path: Path) -> Path:
    """The temporary sibling ``path`` is written to before it is renamed into place."""
    return path.with_name(f"{TEMP_PREFIX}{path.name}")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories can't sync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half.

    The data is written to a temporary sibling, fsynced, renamed over ``path`` and the
    directory is fsynced, so the new content survives a power cut once this returns.
    """
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
