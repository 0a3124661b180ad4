"""How a waiting ``prompt`` step and ``capa prompt ack`` talk: two small files in the bundle.

While a prompt waits, the step keeps ``prompt.pending.json`` (step index, title, message)
in the run's bundle directory. ``capa prompt ack RUN_ID`` — from any terminal on the
machine — writes ``prompt.ack.json`` naming that step; the step polls for it, records the
acknowledgement, and removes both files before it ends, so a sealed bundle never holds them.
Both files are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["ACK_FILE", "PENDING_FILE", "read_json", "remove_quietly", "write_json_atomic"]

PENDING_FILE = "prompt.pending.json"
ACK_FILE = "prompt.ack.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so a reader sees either nothing or the whole file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or ``None`` when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
