"""Disk full: a space reserve per bundle, and recognising "no space left on device".

When the file system fills up mid-run the writer must still be able to record *how* the
run ended (manifest, events) and, ideally, seal what reached disk. Each open bundle
therefore holds a small preallocated reserve file; the writer deletes it the moment a
write fails, which frees just enough room for the manifest, the late events and often
the Parquet files of a short run. The reserve is a temporary file (:data:`TEMP_PREFIX`):
finalize removes it before it writes anything, so a bundle left by a killed process gets
the room back too, and it is never part of a sealed bundle.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path
from typing import Final

from capa.bundle.atomic import TEMP_PREFIX

__all__ = [
    "RESERVE_BYTES",
    "RESERVE_NAME",
    "describe_write_failure",
    "is_disk_full",
    "make_reserve",
    "release_reserve",
]

RESERVE_NAME: Final = f"{TEMP_PREFIX}space-reserve"
RESERVE_BYTES: Final = 512 * 1024
"""Room kept back per bundle: a manifest, a few SQLite pages, a log line, with margin."""

_DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


def make_reserve(directory: Path, size: int = RESERVE_BYTES) -> Path:
    """Allocate the reserve file in ``directory`` (blocks really allocated, not sparse).

    Raises:
        OSError: the space is not there (``ENOSPC``): the bundle cannot be recorded.
    """
    path = directory / RESERVE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno in _DISK_FULL_ERRNOS:
                raise
            # File systems without fallocate (EOPNOTSUPP): write the zeros ourselves.
            os.ftruncate(fd, 0)
            block = b"\0" * 65536
            left = size
            while left > 0:
                left -= os.write(fd, block[: min(left, len(block))])
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)
    return path


def release_reserve(directory: Path) -> bool:
    """Delete the reserve of the bundle ``directory``; whether there was one."""
    try:
        (directory / RESERVE_NAME).unlink()
    except FileNotFoundError:
        return False
    return True


def is_disk_full(exc: BaseException | str) -> bool:
    """Whether ``exc`` (or an error text) says the file system is full or over quota.

    pyarrow raises ``OSError`` without ``errno`` set ("... [errno 28] No space left on
    device") and SQLite says "database or disk is full", so the text counts too.
    """
    if isinstance(exc, str):
        return _full_text(exc)
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
            continue
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.OperationalError) and "full" in str(current):
            return True
        if _full_text(str(current)):
            return True
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    return False


def describe_write_failure(bundle: Path, error: BaseException | str) -> str:
    """One line for the operator: ``disk full: ...`` or ``I/O error: ...``, naming ``bundle``."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    if is_disk_full(error):
        return f"disk full: no space left on the device holding {bundle} ({detail})"
    return f"I/O error writing {bundle} ({detail})"


def _full_text(text: str) -> bool:
    lowered = text.lower()
    return (
        "no space left on device" in lowered
        or "disk quota exceeded" in lowered
        or "database or disk is full" in lowered
        or f"errno {errno.ENOSPC}]" in lowered
    )
