"""``.capa-tables.jsonl``: what the writer knows about every table file it closed.

When the bundle writer closes a table file (:mod:`capa.bundle.tables`) it appends one JSON
line here — path, SHA-256 computed while the bytes were written, size, mtime, inode, rows,
per-channel counts, whether the rows are in time order — and fsyncs it. Sealing uses an
entry only for a file that is still exactly that file (same size, mtime and inode), so it
neither reads the data back to count it nor re-hashes it; anything else is counted from
its footer and hashed from its bytes as before. Finalize removes the index before it
writes ``manifest.sha256``: a sealed bundle never contains it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from capa.bundle.tables import ClosedTable

__all__ = ["TABLE_INDEX", "append_closed", "drop_index", "read_index", "unchanged"]

TABLE_INDEX: Final = ".capa-tables.jsonl"


def append_closed(bundle: Path, table: ClosedTable) -> None:
    """Durably record a closed table file."""
    path = bundle / TABLE_INDEX
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (table.as_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_index(bundle: Path) -> dict[str, ClosedTable]:
    """Entries by relative path (the last line for a path wins; torn lines are skipped)."""
    try:
        data = (bundle / TABLE_INDEX).read_bytes()
    except FileNotFoundError:
        return {}
    out: dict[str, ClosedTable] = {}
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            entry = ClosedTable(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line torn by a kill: that file is simply counted and hashed again
        out[entry.rel] = entry
    return out


def unchanged(bundle: Path, entry: ClosedTable) -> bool:
    """Whether the file is still the one the entry describes (size, mtime, inode)."""
    try:
        st = os.lstat(bundle / entry.rel)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (entry.size, entry.mtime_ns, entry.inode)


def drop_index(bundle: Path) -> None:
    """Remove the index (before ``manifest.sha256`` is written)."""
    try:
        (bundle / TABLE_INDEX).unlink()
    except FileNotFoundError:
        return
