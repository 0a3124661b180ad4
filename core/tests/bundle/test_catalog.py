import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from capa.bundle.catalog import Catalog
from capa.bundle.manifest import new_manifest, write_manifest
from capa.errors import BundleError


def _run(runs_root, run_id, started, **fields):
    bundle = runs_root / run_id
    bundle.mkdir()
    m = new_manifest(run_id, started, fields)
    write_manifest(bundle, m)
    return m, bundle


def test_upsert_list_filters_and_since(runs_root):
    cat = Catalog(runs_root)
    a, a_dir = _run(runs_root, "20260101T000000-aaaa", "2026-01-01T00:00:00.000000+00:00")
    b, b_dir = _run(
        runs_root,
        "20260301T000000-bbbb",
        "2026-03-01T00:00:00.000000+00:00",
        operator={"id": "ada"},
        tags=["x"],
    )
    cat.upsert(a, a_dir)
    cat.upsert(b.transition(run_status="aborted"), b_dir)
    assert [r.run_id for r in cat.runs()] == [a.run_id, b.run_id]
    assert [r.run_id for r in cat.runs(run_status="aborted")] == [b.run_id]
    assert [r.run_id for r in cat.runs(bundle_status="open")] == [a.run_id, b.run_id]
    assert [r.run_id for r in cat.runs(since=datetime(2026, 2, 1))] == [b.run_id]
    assert [r.run_id for r in cat.runs(since=datetime(2026, 2, 1, tzinfo=UTC))] == [b.run_id]
    row = cat.get(b.run_id)
    assert row is not None
    assert (row.operator, row.tags, row.path) == ("ada", ["x"], b.run_id)
    assert cat.bundle_path(row) == b_dir
    assert cat.get("nope") is None


def test_list_filters_on_operator_sample_tag_procedure_and_text(runs_root):
    cat = Catalog(runs_root)
    specs = {
        "20260101T000000-aaaa": {
            "operator": {"id": "zoe", "display_name": "Zoë Straße"},
            "sample": {"id": "S-12", "notes": "Glühdraht, 2nd try"},
            "procedure": {"id": "capa.builtin.free_run", "version": "1"},
            "tags": ["furnace", "pmma"],
        },
        "20260102T000000-bbbb": {
            "operator": {"id": "max"},
            "sample": {"id": "S-13"},
            "procedure": {"id": "capa.builtin.recipe_runner", "version": "1"},
            "tags": ["furnace"],
        },
    }
    for i, (run_id, fields) in enumerate(specs.items()):
        m, d = _run(runs_root, run_id, f"2026-01-0{i + 1}T00:00:00+00:00", **fields)
        cat.upsert(m, d)
    a, b = specs

    def ids(**filters):
        return [r.run_id for r in cat.runs(**filters)]

    assert ids(operator="ZOË STRASSE") == [a]  # display name, Unicode case folding
    assert ids(operator="max") == [b]
    assert ids(sample="s-13") == [b]
    assert ids(tags=["furnace"]) == [a, b]
    assert ids(tags=["furnace", "pmma"]) == [a]
    assert ids(procedure="capa.builtin.recipe_runner") == [b]
    assert ids(text="GLÜHDRAHT") == [a]  # sample notes
    assert ids(text="bbbb") == [b]  # run id
    assert ids(text="_") == []  # no wildcard: no run id, sample or note has "_"
    assert ids(sample="S-12", since=datetime(2026, 1, 2)) == []
    assert ids(tags=["furnace"], run_status="running") == [a, b]
    # A row whose JSON cells are unreadable is listed unfiltered, and only fails to match
    # filters on those cells (SQLite's JSON functions would fail the whole listing).
    with sqlite3.connect(cat.path) as conn:
        conn.execute(
            "UPDATE runs SET tags_json = '{bad', summary_json = 'x' WHERE run_id = ?", (a,)
        )
    assert ids() == [a, b]
    assert ids(tags=["furnace"]) == [b]
    assert ids(text="glühdraht") == []
    assert ids(sample="S-12") == [a]


def test_rebuild_from_manifests_alone(runs_root):
    cat = Catalog(runs_root)
    for i in range(3):
        m, d = _run(runs_root, f"2026010{i + 1}T000000-000{i}", f"2026-01-0{i + 1}T00:00:00+00:00")
        cat.upsert(m, d)
    before = [r.to_dict() for r in cat.runs()]
    (runs_root / "broken").mkdir()
    (runs_root / "broken" / "manifest.json").write_text("{")
    cat.path.unlink()
    for side in ("runs.sqlite-wal", "runs.sqlite-shm"):
        (runs_root / side).unlink(missing_ok=True)
    report = Catalog(runs_root).rebuild()
    assert len(report.indexed) == 3
    assert "not valid JSON" in report.skipped["broken"]
    assert [r.to_dict() for r in Catalog(runs_root).runs()] == before


def test_missing_catalog_is_an_error_for_readers(runs_root):
    with pytest.raises(BundleError, match="no catalog"):
        Catalog(runs_root, create=False)


def test_catalog_is_wal(runs_root):
    Catalog(runs_root)
    conn = sqlite3.connect(runs_root / "runs.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_concurrent_readers_see_no_lock_errors_while_runs_write(open_writer, make_rows, runs_root):
    cat = Catalog(runs_root)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        # a plain sqlite3 reader with default settings (like an analyst's notebook) and
        # the catalog API; WAL means neither ever waits on the writers for long
        conn = sqlite3.connect(runs_root / "runs.sqlite")
        try:
            while not stop.is_set():
                conn.execute("SELECT run_id, run_status FROM runs").fetchall()
                Catalog(runs_root, create=False).runs()
                reads[0] += 1
        except BaseException as exc:  # any error fails the test
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(5):
            writer = open_writer()
            for j in range(20):
                writer.submit(make_rows(j * 50, 50))
                m, d = _run(runs_root, f"20260101T00000{i}-{j:04x}", "2026-01-01T00:00:00+00:00")
                cat.upsert(m, d)  # a busy catalog writer on top of the runs
            writer.close()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert reads[0] > 0
    assert len(cat.runs()) == 105
