import sqlite3
import subprocess
import sys

import pytest

from capa import EventRecord, EventSeverity
from capa.bundle.events import EventsDB, check_severity, create_events_db, seal_events
from capa.errors import BundleError

# Seed 003, "events.sqlite — schema", copied here so the test fails if the code drifts.
SEED_003_TABLE = """CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    t_mono_ns     INTEGER NOT NULL,    -- monotonic ns since run start (join key)
    t_utc         TEXT    NOT NULL,    -- ISO-8601 UTC wall clock
    kind          TEXT    NOT NULL,    -- dotted enum (see taxonomy below)
    severity      TEXT    NOT NULL,    -- 'info' | 'warning' | 'error'
    source        TEXT    NOT NULL,    -- 'watlow:heater', 'procedure:capa.recipe_runner', ...
    message       TEXT    NOT NULL,    -- free-form one-liner
    metadata_json TEXT                 -- JSON-encoded open set
)"""
SEED_003_INDEXES = {
    "idx_events_t_mono_ns": "CREATE INDEX idx_events_t_mono_ns ON events (t_mono_ns)",
    "idx_events_kind": "CREATE INDEX idx_events_kind      ON events (kind)",
}


def _event(i: int, severity: object = EventSeverity.INFO) -> EventRecord:
    return EventRecord(
        t_mono_ns=i,
        t_utc="2026-05-24T14:32:00+00:00",
        kind="test.kind",
        severity=severity,  # type: ignore[arg-type]
        source="test:source",
        message=f"event {i}",
        metadata={"i": i} if i % 2 else None,
    )


def test_schema_is_exactly_seed_003(tmp_path):
    path = tmp_path / "events.sqlite"
    create_events_db(path)
    conn = sqlite3.connect(path)
    objects = dict(
        conn.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    )
    conn.close()
    assert objects == {"events": SEED_003_TABLE, **SEED_003_INDEXES}


def test_wal_and_synchronous_normal_while_recording(tmp_path):
    path = tmp_path / "events.sqlite"
    create_events_db(path)
    db = EventsDB(path)
    try:
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        db.close()


def test_rows_and_metadata_are_stored_and_committed_on_insert(tmp_path):
    path = tmp_path / "events.sqlite"
    create_events_db(path)
    db = EventsDB(path)
    db.insert([_event(i) for i in range(3)])
    reader = sqlite3.connect(path)
    # Committed at once: another connection sees them, and no write lock is held.
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    assert not db.commit()  # nothing is ever pending
    rows = reader.execute(
        "SELECT t_mono_ns, severity, source, message, metadata_json FROM events ORDER BY id"
    ).fetchall()
    reader.close()
    db.close()
    assert rows[1] == (1, "info", "test:source", "event 1", '{"i": 1}')
    assert rows[0][4] is None


@pytest.mark.parametrize("bad", ["debug", "critical", "INFO", ""])
def test_only_three_severities(bad):
    with pytest.raises(BundleError, match="severity"):
        check_severity(bad)
    assert {check_severity(s) for s in ("info", "warning", "error")} == {
        "info",
        "warning",
        "error",
    }


CHILD = """
import os, sys
from pathlib import Path
from capa import EventRecord
from capa.bundle.events import EventsDB, create_events_db
path = Path(sys.argv[1])
create_events_db(path)
db = EventsDB(path)
db.insert([EventRecord(i, "t", "k", "info", "s", "m") for i in range(5)])
db.commit()
os._exit(0)  # like a kill: the connection is never closed, rows live in the WAL only
"""


def test_seal_recovers_committed_rows_from_the_wal_and_leaves_one_file(tmp_path):
    path = tmp_path / "events.sqlite"
    subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True)
    assert (tmp_path / "events.sqlite-wal").stat().st_size > 0
    count, problem = seal_events(path)
    assert (count, problem) == (5, None)
    assert not (tmp_path / "events.sqlite-wal").exists()
    assert not (tmp_path / "events.sqlite-shm").exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_create_refuses_to_overwrite(tmp_path):
    path = tmp_path / "events.sqlite"
    create_events_db(path)
    with pytest.raises(BundleError, match="refusing"):
        create_events_db(path)
