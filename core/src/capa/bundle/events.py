"""``events.sqlite``: the run's deliberate milestone log, exactly as seed 003 defines it.

The table and index DDL below is seed 003's, character for character, so any SQLite client
and any query written against the seed works on a capa bundle. During the run the database
is in WAL mode with ``synchronous=NORMAL`` (a committed event survives a process kill);
finalize checkpoints it and switches it back to a single self-contained file
(:func:`seal_events`), so a sealed bundle never grows ``-wal`` / ``-shm`` side files.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from capa.bundle.atomic import fsync_dir, temp_path_for
from capa.components.emissions import EventRecord, EventSeverity
from capa.errors import BundleError

__all__ = [
    "EVENTS_DDL",
    "SEVERITIES",
    "EventsDB",
    "append_events",
    "check_severity",
    "create_events_db",
    "seal_events",
]

EVENTS_DDL: Final = """CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    t_mono_ns     INTEGER NOT NULL,    -- monotonic ns since run start (join key)
    t_utc         TEXT    NOT NULL,    -- ISO-8601 UTC wall clock
    kind          TEXT    NOT NULL,    -- dotted enum (see taxonomy below)
    severity      TEXT    NOT NULL,    -- 'info' | 'warning' | 'error'
    source        TEXT    NOT NULL,    -- 'watlow:heater', 'procedure:capa.recipe_runner', ...
    message       TEXT    NOT NULL,    -- free-form one-liner
    metadata_json TEXT                 -- JSON-encoded open set
);
CREATE INDEX idx_events_t_mono_ns ON events (t_mono_ns);
CREATE INDEX idx_events_kind      ON events (kind);
"""
"""Seed 003's schema, verbatim."""

SEVERITIES: Final = frozenset(s.value for s in EventSeverity)

_INSERT: Final = (
    "INSERT INTO events (t_mono_ns, t_utc, kind, severity, source, message, metadata_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def check_severity(value: object) -> str:
    """The severity as stored (``info`` / ``warning`` / ``error``), or raise BundleError."""
    text = value.value if isinstance(value, EventSeverity) else str(value)
    if text not in SEVERITIES:
        raise BundleError(f"event severity {text!r} is not one of {sorted(SEVERITIES)} (seed 003)")
    return text


def _metadata_json(metadata: Mapping[str, Any] | None) -> str | None:
    if metadata is None:
        return None
    # default=str: a metadata value that is not JSON (a Path, a datetime) is still recorded
    return json.dumps(dict(metadata), default=str, sort_keys=True, ensure_ascii=False)


def _row(r: EventRecord) -> tuple[Any, ...]:
    return (
        int(r.t_mono_ns),
        str(r.t_utc),
        str(r.kind),
        check_severity(r.severity),
        str(r.source),
        str(r.message),
        _metadata_json(r.metadata),
    )


def create_events_db(path: Path) -> None:
    """Create an empty ``events.sqlite`` with seed 003's schema (refuses to overwrite)."""
    if path.exists():
        raise BundleError(f"{path} already exists; refusing to overwrite an event log")
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(EVENTS_DDL)
        conn.commit()
    finally:
        conn.close()


class EventsDB:
    """Appends rows to a bundle's ``events.sqlite`` (used by the writer thread only).

    Rows are committed as soon as they are inserted. Events are few (milestones, not
    samples) and a WAL commit with ``synchronous=NORMAL`` does not fsync, so this costs
    little — and it means the writer thread never holds SQLite's write lock between
    records: if it gets stuck elsewhere (a stalled disk, the saturation case), another
    connection can still append the events that explain why.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # The writer thread opens and uses the connection; nobody else touches it.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self.rows = 0

    def insert(self, records: Iterable[EventRecord]) -> int:
        """Insert event rows (validated severities); return how many."""
        rows = [_row(r) for r in records]
        if rows:
            self._conn.executemany(_INSERT, rows)
            self._conn.commit()
            self.rows += len(rows)
        return len(rows)

    def commit(self) -> bool:
        """Nothing is ever pending (see the class docstring); kept for the flush cadence."""
        return False

    def abort(self) -> None:
        """Discard uncommitted rows and close (the writer was abandoned)."""
        try:
            self._conn.rollback()
        finally:
            self._conn.close()

    def close(self) -> None:
        """Commit and close."""
        try:
            self._conn.commit()
        finally:
            self._conn.close()


def seal_events(path: Path) -> tuple[int, str | None]:
    """Replace ``events.sqlite`` by a single-file copy with every committed event.

    Returns the number of events and a problem description (``None`` when the copy passed
    SQLite's ``quick_check``). The copy is made with SQLite's online backup, which reads a
    consistent snapshot including committed rows still in the WAL (what a killed writer
    leaves) and works even while a stuck writer keeps its connection open (an abandoned
    writer thread). The copy is switched to rollback-journal mode, fsynced and renamed over
    the original, and the old ``-wal`` / ``-shm`` files are removed, so the sealed bundle
    holds one self-contained file.

    Raises:
        sqlite3.DatabaseError: the file is not a usable SQLite database.
    """
    tmp = temp_path_for(path)
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(path, timeout=5.0)
    try:
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the backup still works
            src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = [row[0] for row in dst.execute("PRAGMA quick_check")]
            count = int(dst.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            dst.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    for side in ("-wal", "-shm", "-journal"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    fsync_dir(path.parent)
    problem = None if check == ["ok"] else "; ".join(str(c) for c in check[:5])
    return count, problem


def append_events(path: Path, records: Iterable[EventRecord], timeout_s: float = 2.0) -> int:
    """Insert events through a connection of its own (not the writer's); return how many.

    Used after the writer was abandoned, when its connection may still be stuck.

    Raises:
        sqlite3.Error: the database stayed locked for ``timeout_s`` or is unusable.
    """
    rows = list(records)
    if not rows:
        return 0
    conn = sqlite3.connect(path, timeout=timeout_s)
    try:
        conn.executemany(_INSERT, [_row(r) for r in rows])
        conn.commit()
    finally:
        conn.close()
    return len(rows)
