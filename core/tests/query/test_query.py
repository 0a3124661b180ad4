"""``capa catalog query`` over real runs of the simulated furnace and a version-2 bundle.

Expected answers are computed independently of capa's query code: straight from the
bundles' files with pyarrow (Parquet) and sqlite3 (events).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from capa.bundle.integrity import verify_bundle
from capa.query import query

from .conftest import V2_RUN, QueryRoot, run_capa

EXAMPLE = (
    "SELECT run_id, max(value) AS peak_degC FROM runs JOIN samples USING (run_id) "
    "WHERE sample_id = 'S-12' AND channel = 'furnace_t' AND value > 600 "
    "GROUP BY run_id ORDER BY run_id"
)


def _peak_from_files(root, run_id):
    """furnace_t's maximum read straight from the bundle's Parquet files."""
    bundle = root / run_id
    if run_id == V2_RUN:
        table = pq.read_table(bundle / "samples" / "daq")
        return pc.max(table["furnace_t"]).as_py()
    table = pq.read_table(bundle / "scalars.parquet")
    mask = pc.equal(table["channel"].cast("string"), "furnace_t")
    return pc.max(table.filter(mask)["value"]).as_py()


def test_the_issues_example_is_one_query(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    code, out, err = run_capa("catalog", "query", EXAMPLE, "--runs-root", root, "--json")
    assert code == 0, err
    rows = json.loads(out)
    expected = sorted([ids["hot12"], ids["v2hot12"]])
    assert [r["run_id"] for r in rows] == expected
    for r in rows:
        assert r["peak_degC"] == pytest.approx(_peak_from_files(root, r["run_id"]))
        assert r["peak_degC"] > 600
    # the cool S-12 run really stayed below 600 and the hot S-13 run really crossed it
    assert _peak_from_files(root, ids["cool12"]) < 600 < _peak_from_files(root, ids["hot13"])
    assert "2 row(s) from 4 bundle(s)" in err
    assert "1 unsealed bundle(s) not queried (--include-open)" in err


def test_table_and_csv_output(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    code, out, _ = run_capa("catalog", "query", EXAMPLE, "--runs-root", root)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run_id", "peak_degC"]
    assert ids["hot12"] in out
    assert V2_RUN in out
    assert ids["cool12"] not in out
    code, out, _ = run_capa("catalog", "query", EXAMPLE, "--runs-root", root, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run_id"] for r in rows] == sorted([ids["hot12"], V2_RUN])
    assert float(rows[0]["peak_degC"]) > 600


def test_runs_view_has_manifest_fields(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    table = query(
        "SELECT run_id, bundle_schema_version, run_status, bundle_status, integrity_status, "
        "operator_id, operator_name, sample_id, sample_notes, procedure_id, tags, path, "
        "started_utc < ended_utc AS ordered, utc_at_zero, "
        "json_extract_string(manifest, '$.sample.material') AS material "
        "FROM runs ORDER BY run_id",
        root,
    ).table.to_pylist()
    by_id = {r["run_id"]: r for r in table}
    assert set(by_id) == {ids[k] for k in ("hot12", "cool12", "hot13", "v2hot12")}
    hot = by_id[ids["hot12"]]
    assert hot["bundle_schema_version"] == 2  # what this capa writes
    assert (hot["run_status"], hot["bundle_status"], hot["integrity_status"]) == (
        "completed",
        "sealed",
        "ok",
    )
    assert (hot["operator_id"], hot["operator_name"], hot["sample_id"]) == ("ada", "Ada L", "S-12")
    assert hot["sample_notes"] == "first try"
    assert hot["procedure_id"] == "capa.builtin.free_run"
    assert hot["tags"] == ["furnace", "hot"]
    assert hot["path"] == str((root / ids["hot12"]).resolve())
    assert hot["ordered"] is True
    clock = json.loads((root / ids["hot12"] / "manifest.json").read_text())["clock"]
    assert hot["utc_at_zero"] == datetime.fromisoformat(clock["utc_at_zero"])
    v2 = by_id[V2_RUN]
    assert v2["bundle_schema_version"] == 2
    assert v2["material"] == "PMMA"
    assert v2["utc_at_zero"].isoformat() == "2026-01-02T00:00:00+00:00"


def test_samples_view_unpivots_the_wide_v2_table(query_root: QueryRoot):
    root = query_root.root
    got = query(
        "SELECT channel, t_mono_ns, value, raw_value, unit, status FROM samples "
        f"WHERE run_id = '{V2_RUN}' ORDER BY channel, t_mono_ns",
        root,
    ).table.to_pylist()
    # The same rows built by hand from the two part files: one row per (tick, channel)
    # where the channel has a value or a status.
    wide = pq.read_table(root / V2_RUN / "samples" / "daq").to_pylist()
    expected = []
    for ch, unit in (("furnace_t", "degC"), ("hf", "kW/m2")):
        for row in wide:
            if row[ch] is None and row[f"{ch}.status"] is None:
                continue
            raw = row.get(f"{ch}.raw")
            expected.append(
                {
                    "channel": ch,
                    "t_mono_ns": row["t_mono_ns"],
                    "value": row[ch],
                    "raw_value": raw,
                    "unit": unit,
                    "status": row[f"{ch}.status"],
                }
            )
    polled = pq.read_table(root / V2_RUN / "scalars.parquet").to_pylist()
    expected += [
        {
            "channel": "furnace_sp",
            "t_mono_ns": r["t_mono_ns"],
            "value": r["value"],
            "raw_value": None,
            "unit": "degC",
            "status": "ok",
        }
        for r in polled
    ]
    expected.sort(key=lambda r: (r["channel"], r["t_mono_ns"]))
    assert got == expected
    statuses = {r["status"] for r in got}
    assert {"sensor_fail", "overload"} <= statuses  # a row with a status but no value stays


def test_samples_view_matches_every_v1_scalars_file(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    rows = query("SELECT run_id, count(*) AS n FROM samples GROUP BY run_id", root).table
    counts = dict(zip(rows["run_id"].to_pylist(), rows["n"].to_pylist(), strict=True))
    for key in ("hot12", "cool12", "hot13"):
        assert counts[ids[key]] == pq.read_metadata(root / ids[key] / "scalars.parquet").num_rows
        assert counts[ids[key]] > 5


def test_events_view_and_bundles_stay_untouched(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    rows = query(
        "SELECT run_id, count(*) AS n, count(*) FILTER (severity = 'warning') AS warnings "
        "FROM events GROUP BY run_id ORDER BY run_id",
        root,
    ).table.to_pylist()
    for r in rows:
        conn = sqlite3.connect(f"file:{root / r['run_id'] / 'events.sqlite'}?mode=ro", uri=True)
        try:
            assert r["n"] == conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    assert {r["run_id"] for r in rows} == {ids[k] for k in ("hot12", "cool12", "hot13", "v2hot12")}
    assert {r["run_id"]: r["warnings"] for r in rows}[V2_RUN] == 1
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert after == before  # no -shm, -wal or journal appeared, nothing was rewritten
    for key in ("hot12", "cool12", "hot13"):
        assert verify_bundle(root / ids[key]).ok


def test_channels_view_v1_from_the_rig_file_v2_from_parquet_metadata(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    rows = query(
        "SELECT * FROM channels WHERE run_id IN (?, ?) ORDER BY run_id, channel".replace(
            "?, ?", f"'{ids['hot12']}', '{V2_RUN}'"
        ),
        root,
    ).table.to_pylist()
    v1 = [r for r in rows if r["run_id"] == ids["hot12"]]
    common = {"run_id": ids["hot12"], "location": "scalars", "kind": "temperature"}
    assert v1 == [
        {
            **common,
            "channel": "furnace_f",
            "unit": "degF",
            "raw_unit": "degC",
            "device": "furnace",
            "field": "pv",
            "calibration": '{"intercept": 32.0, "kind": "linear", "slope": 1.8}',
            "plot_group": None,
        },
        {
            **common,
            "channel": "furnace_rise",
            "unit": "degC",
            "raw_unit": None,
            "device": "derived",
            "field": None,
            "calibration": None,
            "plot_group": None,
        },
        {
            **common,
            "channel": "furnace_t",
            "unit": "degC",
            "raw_unit": None,
            "device": "furnace",
            "field": "pv",
            "calibration": None,
            "plot_group": "temperature",
        },
    ]
    v2 = {r["channel"]: r for r in rows if r["run_id"] == V2_RUN}
    assert set(v2) == {"furnace_sp", "furnace_t", "hf"}
    assert v2["furnace_t"]["location"] == "samples/daq"
    assert v2["furnace_t"]["raw_unit"] == "mV"
    assert v2["furnace_t"]["calibration"] == "linear gain=25 offset=0"
    assert v2["hf"]["unit"] == "kW/m2"
    assert v2["hf"]["kind"] == "heat_flux"
    assert v2["furnace_sp"]["location"] == "scalars"
    assert v2["furnace_sp"]["kind"] == "setpoint"


def test_sealed_only_by_default_include_open_adds_the_open_bundle(query_root: QueryRoot):
    root, ids = query_root.root, query_root.ids
    sql = "SELECT run_id, bundle_status FROM runs ORDER BY run_id"
    sealed = query(sql, root)
    assert ids["open12"] not in {r["run_id"] for r in sealed.table.to_pylist()}
    assert sealed.unsealed_skipped == [ids["open12"]]
    code, out, err = run_capa(
        "catalog", "query", EXAMPLE, "--runs-root", root, "--include-open", "--json"
    )
    assert code == 0, err
    assert ids["open12"] in [r["run_id"] for r in json.loads(out)]
    assert "not queried" not in err


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("COPY (SELECT 1) TO '{root}/leak.csv'", "COPY statements are refused"),
        ("ATTACH '{root}/leak.db'", "ATTACH statements are refused"),
        ("CREATE TABLE leak AS SELECT 1", "CREATE statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("INSTALL httpfs", "statements are refused"),
        ("SELECT 1; SELECT 2", "exactly one statement (got 2)"),
        ("SELECT * FROM read_csv('/etc/hostname')", "Permission Error"),
        ("SELECT nope FROM runs", 'Referenced column "nope" not found'),
        ("SELEC 1", "Parser Error"),
    ],
)
def test_refused_or_invalid_sql_is_one_line_exit_2(query_root: QueryRoot, sql, why):
    root = query_root.root
    before = sorted(p.name for p in root.iterdir())
    code, out, err = run_capa("catalog", "query", sql.format(root=root), "--runs-root", root)
    assert code == 2
    assert out == ""
    assert err.startswith("capa: error: SQL: ")
    assert why in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in root.iterdir()) == before


def test_missing_duckdb_names_the_extra(query_root: QueryRoot, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb -> ImportError
    code, _out, err = run_capa("catalog", "query", "SELECT 1", "--runs-root", query_root.root)
    assert code == 2
    assert err.strip() == "capa: error: capa catalog query needs DuckDB: pip install 'capa[query]'"


def test_json_and_csv_together_is_a_usage_error(query_root: QueryRoot):
    code, _, err = run_capa(
        "catalog", "query", "SELECT 1", "--runs-root", query_root.root, "--json", "--csv"
    )
    assert code == 64
    assert "at most one of --json and --csv" in err


def test_a_broken_bundle_is_a_warning_not_a_failure(tmp_path, query_root: QueryRoot):
    import shutil

    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(query_root.root / V2_RUN, root / V2_RUN)
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")
    code, out, err = run_capa("catalog", "query", "SELECT run_id FROM runs", "--runs-root", root)
    assert code == 0
    assert V2_RUN in out
    assert "capa: warning: skipped:" in err
    assert "broken/manifest.json" in err


def test_missing_runs_root_is_exit_2(tmp_path):
    code, _, err = run_capa("catalog", "query", "SELECT 1", "--runs-root", tmp_path / "nope")
    assert code == 2
    assert err.strip() == f"capa: error: runs root {tmp_path / 'nope'} does not exist"


def test_a_wildcard_runs_root_spans_several_rigs(tmp_path, query_root: QueryRoot):
    import shutil

    ids = query_root.ids
    for rig, keys in (("rig-a", ("hot12", "cool12")), ("rig-b", ("hot13", "v2hot12"))):
        for key in keys:
            shutil.copytree(query_root.root / ids[key], tmp_path / rig / "runs" / ids[key])
    pattern = f"{tmp_path}/*/runs"
    code, out, err = run_capa("catalog", "query", EXAMPLE, "--runs-root", pattern, "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == sorted([ids["hot12"], ids["v2hot12"]])
    assert f"2 row(s) from 4 bundle(s) in {pattern}" in err
    # the query may read under the pattern's fixed prefix, nowhere else
    code, _, err = run_capa(
        "catalog", "query", "SELECT * FROM read_csv('/etc/hostname')", "--runs-root", pattern
    )
    assert code == 2
    assert "Permission Error" in err


def test_an_open_v2_bundle_shows_its_complete_parts_only(tmp_path, query_root: QueryRoot):
    import shutil

    root = tmp_path / "runs"
    bundle = root / V2_RUN
    shutil.copytree(query_root.root / V2_RUN, bundle)
    (bundle / "manifest.sha256").unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(run_status="running", bundle_status="open", integrity={"status": "unknown"})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    part1 = bundle / "samples" / "daq" / "part-00001.parquet"
    part1.write_bytes(part1.read_bytes()[:-200])  # still being written: no footer yet
    sql = "SELECT channel, count(*) AS n FROM samples GROUP BY channel ORDER BY channel"
    code, out, err = run_capa("catalog", "query", sql, "--runs-root", root, "--json")
    assert code == 0
    assert json.loads(out) == []  # sealed only: the open bundle is not queried
    assert "1 unsealed bundle(s) not queried" in err
    code, out, err = run_capa(
        "catalog", "query", sql, "--runs-root", root, "--json", "--include-open"
    )
    assert code == 0, err
    part0 = pq.read_table(bundle / "samples" / "daq" / "part-00000.parquet")
    assert json.loads(out) == [
        {"channel": "furnace_sp", "n": 3},
        {"channel": "furnace_t", "n": part0.num_rows},
        {"channel": "hf", "n": part0.num_rows - part0["hf"].null_count},
    ]
    assert "part-00001.parquet: not a complete Parquet file" in err


def test_wide_tables_of_the_same_shape_keep_their_run_ids(tmp_path, query_root: QueryRoot):
    import shutil

    import pyarrow as pa

    root = tmp_path / "runs"
    shutil.copytree(query_root.root / V2_RUN, root / V2_RUN)
    other = "20260103T000000-v2bb"
    shutil.copytree(query_root.root / V2_RUN, root / other)
    manifest = json.loads((root / other / "manifest.json").read_text())
    manifest["run_id"] = other
    (root / other / "manifest.json").write_text(json.dumps(manifest))
    part = root / other / "samples" / "daq" / "part-00001.parquet"
    table = pq.read_table(part)
    i = table.schema.get_field_index("furnace_t")
    doubled = pc.multiply(table["furnace_t"], 2.0)
    pq.write_table(table.set_column(i, table.schema.field(i), doubled), part)
    rows = query(
        "SELECT run_id, max(value) AS peak, count(*) AS n FROM samples "
        "WHERE channel = 'furnace_t' GROUP BY run_id ORDER BY run_id",
        root,
    ).table.to_pylist()
    expected_n = pa.concat_tables(
        [pq.read_table(p) for p in sorted((root / V2_RUN / "samples" / "daq").iterdir())]
    )
    n = expected_n.num_rows - sum(
        1
        for v, st in zip(
            expected_n["furnace_t"].to_pylist(),
            expected_n["furnace_t.status"].to_pylist(),
            strict=True,
        )
        if v is None and st is None
    )
    assert rows == [
        {"run_id": V2_RUN, "peak": 640.0, "n": n},
        {"run_id": other, "peak": 1280.0, "n": n},
    ]


def test_version_1_bundles_as_capa_0_2_sealed_them(tmp_path: Path):
    """A runs root holding a bundle sealed by capa 0.2.0 (schema 1, no clock block)."""
    import shutil

    fixture = Path(__file__).parents[1] / "bundle" / "fixtures" / "v1-runs"
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(fixture / "20260101T000000-0002", root / "20260101T000000-0002")
    runs = query("SELECT run_id, bundle_schema_version, utc_at_zero FROM runs", root)
    assert runs.table.to_pylist() == [
        {"run_id": "20260101T000000-0002", "bundle_schema_version": 1, "utc_at_zero": None}
    ]
    counts = query(
        "SELECT channel, count(*) AS n FROM samples GROUP BY channel ORDER BY channel", root
    ).table.to_pylist()
    scalars = pq.read_table(root / "20260101T000000-0002" / "scalars.parquet")
    expected = {}
    for name in scalars.column("channel").to_pylist():
        expected[name] = expected.get(name, 0) + 1
    assert {r["channel"]: r["n"] for r in counts} == expected
