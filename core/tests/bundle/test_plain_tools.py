"""A sealed bundle is plain files: standard tools read it with no capa involved."""

import json
import shutil
import subprocess
import sys

import pytest

from capa import DeviceRecords

READER = """
import json, sqlite3, sys
import pyarrow.parquet as pq
bundle = sys.argv[1]
scalars = pq.read_table(bundle + "/scalars.parquet")
records = pq.read_table(bundle + "/device_records/watlow.parquet")
conn = sqlite3.connect("file:" + bundle + "/events.sqlite?mode=ro", uri=True)
events = conn.execute("SELECT kind, severity FROM events ORDER BY t_mono_ns").fetchall()
conn.close()
manifest = json.load(open(bundle + "/manifest.json"))
print(json.dumps({
    "rows": scalars.num_rows,
    "channels": sorted(set(scalars.column("channel").to_pylist())),
    "first": scalars.slice(0, 1).to_pylist()[0],
    "records": records.to_pydict(),
    "events": events,
    "status": [manifest["run_status"], manifest["bundle_status"], manifest["integrity"]["status"]],
    "capa_imported": sorted(m for m in sys.modules if m == "capa" or m.startswith("capa.")),
}))
"""


@pytest.fixture
def sealed(open_writer, make_rows):
    writer = open_writer()
    for i in range(4):
        writer.submit(make_rows(i * 10, 10, channel=f"c{i % 2}"))
    writer.submit(DeviceRecords("watlow", {"t_mono_ns": [1], "pv": [21.0]}))
    writer.emit("alarm.high", "too hot", severity="error", source="watlow:heater")
    assert writer.close().ok
    return writer.bundle


def test_parquet_and_sqlite_open_without_capa(sealed):
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(sealed)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["capa_imported"] == []
    assert out["rows"] == 40
    assert out["channels"] == ["c0", "c1"]
    assert out["first"] == {
        "t_mono_ns": 0,
        "channel": "c0",
        "value": 0.0,
        "raw_value": None,
        "unit": "degC",
        "status": "ok",
        "source_field": None,
    }
    assert out["records"] == {"t_mono_ns": [1], "pv": [21.0]}
    assert out["events"] == [["alarm.high", "error"]]
    assert out["status"] == ["completed", "sealed", "ok"]
    # reading left nothing behind that would break the checksums
    assert not (sealed / "events.sqlite-wal").exists()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs GNU sha256sum")
def test_system_sha256sum_passes_inside_the_bundle(sealed):
    proc = subprocess.run(
        ["sha256sum", "-c", "--strict", "manifest.sha256"],
        cwd=sealed,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = [
        line.split("  ", 1)[1] for line in (sealed / "manifest.sha256").read_text().splitlines()
    ]
    assert listed == sorted(listed)
    assert "manifest.sha256" not in listed
    assert {"manifest.json", "scalars.parquet", "events.sqlite", "run.log"} <= set(listed)
