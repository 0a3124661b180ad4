"""Streaming a channel in windows through capa.open_bundle, on a hand-written v2 bundle.

The bundle follows core/docs/bundle-schema.md (wide ``samples/<device>/part-*.parquet``
with the channel metadata in the fields), written here with pyarrow alone so the report
is checked against the documented layout, not against capa's writer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import capa
from capa_report import source
from capa_report.build import write_report
from capa_report.figures import TimeAxis, read_decimated
from capa_report.model import ChannelMeta, steps_from_events

RUN_ID = "20260101T000000-abcd"
RATE = 1000
SECONDS = 300
SPIKE_AT = 123_457

EVENTS_DDL = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, t_mono_ns INTEGER NOT NULL, t_utc TEXT NOT NULL,
    kind TEXT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL,
    metadata_json TEXT
);
"""


def _meta(name: str, unit: str, group: str, role: str = "value") -> dict[str, str]:
    return {
        "capa.channel": name,
        "capa.role": role,
        "capa.unit": unit,
        "capa.raw_unit": unit,
        "capa.kind": "voltage",
        "capa.device": "daq",
        "capa.field": name,
        "capa.calibration": "identity",
        "capa.plot_group": group,
    }


def write_v2_bundle(root: Path) -> Path:
    bundle = root / RUN_ID
    folder = bundle / "samples" / "daq"
    folder.mkdir(parents=True)
    n = RATE * SECONDS
    t = np.arange(n, dtype=np.int64) * (1_000_000_000 // RATE) + 5_000_000
    wave = np.sin(np.arange(n) / 3000.0)
    wave[SPIKE_AT] = 40.0
    ramp = np.arange(n, dtype=np.float64) / RATE
    ramp[::7] = np.nan  # a channel with gaps (null in the wide table)
    text = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema(
        [
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field("wave", pa.float64(), metadata=_meta("wave", "V", "signals")),
            pa.field("wave.status", text, metadata=_meta("wave", "", "signals", "status")),
            pa.field("ramp", pa.float64(), metadata=_meta("ramp", "s", "")),
        ],
        metadata={"capa.table": "samples", "capa.device": "daq", "capa.run_id": RUN_ID,
                  "capa.bundle_schema_version": "2"},
    )  # fmt: skip
    per_part = 120_000
    for part, first in enumerate(range(0, n, per_part)):
        sl = slice(first, first + per_part)
        m = len(t[sl])
        table = pa.table(
            {
                "t_mono_ns": t[sl],
                "wave": wave[sl],
                "wave.status": pa.array(["ok"] * m).dictionary_encode(),
                "ramp": pa.array(ramp[sl], from_pandas=True),
            }
        ).cast(schema.with_metadata({**schema.metadata, b"capa.part": str(part).encode()}))
        pq.write_table(table, folder / f"part-{part:05d}.parquet", row_group_size=25_000)
    manifest = {
        "run_id": RUN_ID,
        "bundle_schema_version": 2,
        "started_utc": "2026-01-01T00:00:00+00:00",
        "ended_utc": "2026-01-01T00:05:01+00:00",
        "run_status": "completed",
        "bundle_status": "sealed",
        "clock": {"utc_at_zero": "2026-01-01T00:00:00+00:00", "monotonic_origin_ns": 1,
                  "method": "test"},
        "recording": {"channels": ["ramp", "wave"], "devices": ["daq"]},
        "counts": {"samples": {"daq": {"rows": n, "parts": 3,
                   "channels": {"wave": n, "ramp": int(np.isfinite(ramp).sum())}}}},
    }  # fmt: skip
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with sqlite3.connect(bundle / "events.sqlite") as conn:
        conn.executescript(EVENTS_DDL)
        rows = [
            (1_000_000_000, "method.step.entered", "info", {"index": 0, "kind": "hold"}),
            (100_000_000_000, "method.step.exited", "info", {"index": 0, "outcome": "completed"}),
            (100_000_000_001, "method.step.entered", "info", {"index": 1, "kind": "wait"}),
            (150_000_000_000, "method.step.failed", "error", {"index": 1, "kind": "wait"}),
            (150_000_000_001, "method.step.entered", "info", {"index": 2, "kind": "safe_shutdown",
                                                              "purpose": "abort"}),
            (151_000_000_000, "daq.comm_error", "warning", {}),
        ]  # fmt: skip
        for t_ns, kind, sev, meta in rows:
            conn.execute(
                "INSERT INTO events (t_mono_ns, t_utc, kind, severity, source, message, "
                "metadata_json) VALUES (?, '2026-01-01T00:00:01+00:00', ?, ?, 'nidaq.task:daq', "
                "?, ?)",
                (t_ns, kind, sev, f"{kind} message", json.dumps(meta)),
            )
    conn.close()
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle).as_posix()}\n"
        for p in files
    )
    (bundle / "manifest.sha256").write_text(listing)
    return bundle


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    return write_v2_bundle(tmp_path / "runs")


def test_windows_read_every_sample_once(v2: Path, monkeypatch):
    monkeypatch.setattr(source, "WINDOW_ROWS", 40_000)
    data = source.open_run(str(v2))
    channels = {c.name: c for c in data.channels()}
    assert set(channels) == {"wave", "ramp"}
    assert channels["wave"].unit == "V"
    assert channels["wave"].plot_group == "signals"
    span = data.span()
    bundle = capa.open_bundle(v2)
    for name in ("wave", "ramp"):
        whole_t, whole_v = bundle.series(name)
        pieces = list(data.chunks(channels[name], *span))
        assert len(pieces) == -(-channels[name].rows // 40_000)  # one read per window
        assert max(len(t) for t, _ in pieces) <= 40_000 + RATE  # bounded, whatever the run
        t = np.concatenate([p[0] for p in pieces])
        v = np.concatenate([p[1] for p in pieces])
        np.testing.assert_array_equal(t, whole_t)
        np.testing.assert_array_equal(v, whole_v)


def test_span_comes_from_the_footers(v2: Path):
    data = source.open_run(str(v2))
    assert data.span() == (5_000_000, 5_000_000 + (RATE * SECONDS - 1) * 1_000_000)


def test_decimated_figure_keeps_the_spike(v2: Path, monkeypatch):
    monkeypatch.setattr(source, "WINDOW_ROWS", 50_000)
    data = source.open_run(str(v2))
    wave = next(c for c in data.channels() if c.name == "wave")
    span = data.span()
    got = read_decimated(data, wave, TimeAxis(*span), 1376)
    assert got.decimated
    assert got.points == RATE * SECONDS
    assert got.values.max() == 40.0
    assert len(got.t_ns) <= 2 * 1376


def test_report_of_a_v2_bundle_with_a_failed_step(v2: Path, tmp_path: Path):
    data = source.open_run(str(v2))
    written = write_report(data, tmp_path / "out")
    assert written.integrity.ok
    assert sorted(p.name for p in written.figures) == ["ramp.png", "signals.png"]
    assert [(s.kind, s.outcome) for s in written.steps] == [
        ("hold", "completed"),
        ("wait", "failed"),
        ("safe_shutdown", "unfinished"),
    ]
    html = written.html.read_text(encoding="utf-8")
    assert "<tr class='outcome-failed'>" in html
    assert "<tr class='sev-error'>" in html
    assert "<tr class='sev-warning'>" in html
    health = html.split("id='health'", 1)[1].split("</table>", 1)[0]
    assert "1 communication error events" in health
    assert "1 error events" in health


def test_steps_pair_entries_with_exits():
    from capa_report.model import event_row

    events = [
        event_row({"t_mono_ns": 1, "kind": "method.step.entered", "message": "[00] a",
                   "metadata_json": json.dumps({"index": 0, "kind": "a"})}),
        event_row({"t_mono_ns": 2, "kind": "method.step.exited",
                   "metadata_json": json.dumps({"index": 0, "outcome": "stopped"})}),
        event_row({"t_mono_ns": 3, "kind": "method.step.exited",  # no entry: ignored
                   "metadata_json": json.dumps({"index": 5})}),
        event_row({"t_mono_ns": 4, "kind": "method.step.entered", "message": "[00] a again",
                   "metadata_json": json.dumps({"index": 0, "kind": "a"})}),
    ]  # fmt: skip
    steps = steps_from_events(events)
    assert [(s.start_ns, s.end_ns, s.outcome) for s in steps] == [
        (1, 2, "stopped"),
        (4, None, "unfinished"),
    ]


def test_channel_without_group_gets_its_own_figure():
    assert ChannelMeta("mass", "g").group == "mass"
    assert ChannelMeta("t1", "degC", plot_group="temps").group == "temps"


def test_damaged_table_is_one_line_and_exit_2(v2: Path, tmp_path: Path, capsys):
    from capa.cli.main import main

    part = v2 / "samples" / "daq" / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:5000])  # cut mid-file: no footer
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(v2), "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("capa: error:")
    assert "part-00001.parquet" in err[0]
    assert not (out / "report.html").exists()
