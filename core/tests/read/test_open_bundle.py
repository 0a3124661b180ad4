"""capa.open_bundle on version-1 bundles (today's writer) and version-2 bundles (the spec)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import capa
from capa.errors import BundleError, MissingDependencyError

from .v2fixture import RUN_ID, V2Spec, wide_values


def test_open_by_path_and_by_run_id(v2_bundle, monkeypatch):
    by_path = capa.open_bundle(v2_bundle)
    assert by_path.run_id == RUN_ID
    assert by_path.schema_version == 2
    assert isinstance(by_path, capa.Bundle)
    by_id = capa.open_bundle(RUN_ID, runs_root=v2_bundle.parent)
    assert by_id.path == v2_bundle
    monkeypatch.setenv("CAPA_RUNS_ROOT", str(v2_bundle.parent))
    assert capa.open_bundle(RUN_ID).path == v2_bundle


def test_open_refuses_what_it_cannot_read(tmp_path, v2_bundle):
    with pytest.raises(BundleError, match="no run bundle"):
        capa.open_bundle("20990101T000000-dead", runs_root=tmp_path)
    manifest = v2_bundle / "manifest.json"
    data = json.loads(manifest.read_text())
    data["bundle_schema_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="bundle_schema_version 99"):
        capa.open_bundle(v2_bundle)
    manifest.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        capa.open_bundle(v2_bundle)


def test_v1_channels_come_from_the_copied_hardware_file(v1_bundle):
    b = capa.open_bundle(v1_bundle)
    assert b.schema_version == 1
    ch = b.channels()
    assert list(ch) == ["furnace_t", "heat_flux", "rise"]
    hf = ch["heat_flux"]
    assert (hf.unit, hf.raw_unit, hf.kind, hf.device, hf.field) == (
        "kW/m2",
        "V",
        "heat_flux",
        "daq",
        "hf_gauge",
    )
    assert hf.calibration == "linear intercept=0 slope=5000"
    assert hf.plot_group == "heat flux"
    assert hf.has_raw
    assert hf.layout == "long"
    assert ch["rise"].device == "derived"
    assert ch["rise"].unit == "degC"


def test_v2_channels_come_from_parquet_metadata(v2_bundle):
    ch = capa.open_bundle(v2_bundle).channels()
    assert set(ch) == {"furnace_t", "mass", "tc1", "hf"}
    hf = ch["hf"]
    assert (hf.unit, hf.raw_unit, hf.layout, hf.table, hf.has_raw) == (
        "kW/m2",
        "V",
        "wide",
        "samples/daq",
        True,
    )
    assert hf.calibration == "linear slope=5000 intercept=0"
    assert hf.plot_group == "flux"
    assert ch["mass"].unit == "g"
    assert ch["mass"].device == "balance"
    assert ch["mass"].layout == "long"
    assert ch["mass"].table == "scalars.parquet"


def test_v1_samples_long_and_wide(v1_bundle):
    b = capa.open_bundle(v1_bundle)
    long = b.samples(start=2.0, end=3.0)
    assert long.kind == "long"
    rows = long.to_pylist()
    assert len(rows) == 30  # 10 Hz x 3 channels x 1 s, end exclusive
    assert all(2_000_000_000 <= r["t_mono_ns"] < 3_000_000_000 for r in rows)
    hf = [r for r in rows if r["channel"] == "heat_flux"]
    assert hf[0]["unit"] == "kW/m2"
    assert hf[0]["raw_value"] == pytest.approx(hf[0]["value"] / 5000)
    wide = b.samples(["furnace_t", "rise"], start=2, end=3, layout="wide")
    assert wide.arrow.column_names == ["t_mono_ns", "furnace_t", "rise"]
    assert wide.arrow.num_rows == 10
    meta = wide.arrow.schema.field("furnace_t").metadata
    assert meta[b"capa.unit"] == b"degC"


def test_v2_samples_read_both_layouts_and_join_devices(v2_bundle):
    b = capa.open_bundle(v2_bundle)
    long = b.samples(["tc1", "hf", "mass"], start=1.0, end=1.01)
    by = {}
    for r in long.to_pylist():
        by.setdefault(r["channel"], []).append(r)
    assert len(by["tc1"]) == 10
    assert len(by["hf"]) == 10
    assert [r["t_mono_ns"] for r in by["mass"]] == [1_000_001_000]  # 5 Hz, 1 us offset
    t = np.array([r["t_mono_ns"] for r in by["tc1"]])
    assert np.allclose([r["value"] for r in by["tc1"]], wide_values(V2Spec(), t)["tc1"])
    assert by["hf"][0]["raw_value"] == pytest.approx(by["hf"][0]["value"] / 5000)
    assert by["hf"][0]["source_field"] == "daq.ai1"
    assert by["hf"][0]["status"] == "ok"
    wide = b.samples(["tc1", "mass"], start=1.0, end=1.5, layout="wide")
    table = wide.arrow
    assert table.column_names == ["t_mono_ns", "tc1", "mass"]
    times = table.column("t_mono_ns").to_pylist()
    assert times == sorted(set(times))
    # the 5 Hz balance rows (1 us after a 1 kHz tick) are rows of their own
    mass_rows = [r for r in table.to_pylist() if r["mass"] is not None]
    assert [r["t_mono_ns"] for r in mass_rows] == [1_000_001_000, 1_200_001_000, 1_400_001_000]
    assert all(r["tc1"] is None for r in mass_rows)
    assert table.num_rows == 500 + 3


def test_a_window_reads_only_the_row_groups_it_overlaps(v2_bundle, monkeypatch):
    reads = []
    original = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        reads.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    b = capa.open_bundle(v2_bundle)
    # 20 s at 1 kHz in parts of 10 000 rows, row groups of 2 000 rows (2 s)
    frame = b.samples(["tc1"], start=12.5, end=13.0)
    assert frame.stats.row_groups_total == 10
    assert frame.stats.row_groups_read == 1 == len(reads)
    assert len(frame) == 500
    reads.clear()
    everything = b.samples(["tc1"])
    assert len(reads) == 10
    assert len(everything) == 20_000


def test_series_gives_numpy_arrays_in_time_order(v1_bundle, v2_bundle):
    t, v = capa.open_bundle(v2_bundle).series("hf", start=3, end=4)
    assert t.dtype == np.int64
    assert v.dtype == np.float64
    assert len(t) == 1000
    assert np.allclose(v, wide_values(V2Spec(), t)["hf"])
    t1, v1 = capa.open_bundle(v1_bundle).series("furnace_t")
    assert len(t1) == 100
    assert np.all(np.diff(t1) > 0)
    assert v1[0] == pytest.approx(20.0)


def test_clock_anchor_places_datetimes_and_gives_utc(v2_bundle, v1_bundle):
    b = capa.open_bundle(v2_bundle)
    zero = datetime(2026, 5, 24, 14, 32, 0, 250_000, tzinfo=UTC)
    assert b.utc_at_zero == zero
    assert b.clock["method"] == "test fixture"
    by_datetime = b.samples(
        ["tc1"], start=zero + timedelta(seconds=2), end=zero + timedelta(seconds=3)
    )
    by_seconds = b.samples(["tc1"], start=2, end=3)
    assert by_datetime.arrow.equals(by_seconds.arrow)
    assert b.t_utc(1_500_000_000) == zero + timedelta(seconds=1.5)
    with_utc = b.samples(["mass"], start=0, end=0.5, utc=True).arrow
    assert with_utc.column("t_utc").type == pa.timestamp("ns", tz="UTC")
    assert with_utc.column("t_utc")[0].as_py() == zero + timedelta(microseconds=1)
    # a bundle written before the anchor existed: started_utc stands in for it
    manifest = json.loads((v1_bundle / "manifest.json").read_text())
    del manifest["clock"]
    (v1_bundle / "manifest.json").write_text(json.dumps(manifest))
    old = capa.open_bundle(v1_bundle)
    assert old.utc_at_zero == datetime.fromisoformat(old.manifest["started_utc"])
    assert "not bracketed" in old.clock["method"]


def test_events_filter_by_kind_pattern_severity_and_window(v2_bundle):
    b = capa.open_bundle(v2_bundle)
    assert len(b.events()) == 5
    steps = b.events("method.step.*")
    assert steps.arrow.column("kind").to_pylist() == ["method.step.started", "method.step.ended"]
    assert steps.to_pylist()[0]["metadata"] == '{"step": 1}'
    bad = b.events(severity=["warning", "error"])
    assert bad.arrow.column("severity").to_pylist() == ["warning", "error"]
    assert len(b.events(start=5, end=9)) == 2


def test_device_records_have_time_and_binary_raw_in_both_versions(v1_bundle, v2_bundle):
    old = capa.open_bundle(v1_bundle).device_records("sartorius").arrow
    assert old.column_names[0] == "t_mono_ns"
    assert old.column("t_mono_ns").to_pylist() == [10, 1_000_000_010]
    assert old.schema.field("raw").type == pa.binary()
    assert old.column("raw").to_pylist() == [b"+ 12.5 g\r\n", b"+ 12.4 g\r\n"]
    new = capa.open_bundle(v2_bundle)
    assert new.device_record_families() == ["sartorius"]
    recs = new.device_records("sartorius", start=1, end=3).arrow
    assert recs.column("raw").to_pylist() == [b"+ 12.4 g\r\n"]
    with pytest.raises(BundleError, match="families: sartorius"):
        new.device_records("watlow")


def test_frames_artifacts_and_verify(v1_bundle):
    b = capa.open_bundle(v1_bundle)
    assert b.cameras() == ["cam"]
    assert b.frames("cam").arrow.column("frame_idx").to_pylist() == [0]
    arts = {a.path: a for a in b.artifacts()}
    assert arts["config/rig.toml"].category == "config"
    assert arts["manifest.json"].category == "manifest"
    assert arts["scalars.parquet"].size == (v1_bundle / "scalars.parquet").stat().st_size
    # reading events must not leave -shm/-wal files: the bundle still verifies
    b.events()
    assert b.verify().ok
    (v1_bundle / "config" / "rig.toml").write_bytes(b"tampered")
    result = b.verify()
    assert not result.ok
    assert result.changed == ["config/rig.toml"]


def test_unknown_channel_and_bad_bounds_are_one_clear_error(v2_bundle):
    b = capa.open_bundle(v2_bundle)
    with pytest.raises(BundleError, match=r"no channel 'nope' \(channels: "):
        b.samples(["nope"])
    with pytest.raises(BundleError, match="layout"):
        b.samples(layout="tall")  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="time bound"):
        b.samples(start="soon")  # type: ignore[arg-type]


def test_missing_optional_library_is_one_line(v2_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)
    frame = capa.open_bundle(v2_bundle).samples(["mass"])
    with pytest.raises(MissingDependencyError, match=r"to_polars\(\) needs the polars library"):
        frame.to_polars()
    assert isinstance(MissingDependencyError("x"), ImportError)


def test_open_bundle_reads_nothing_but_the_manifest(v2_bundle, monkeypatch):
    opened = []
    original = pq.ParquetFile.__init__

    def spy(self, source, *args, **kwargs):
        opened.append(source)
        original(self, source, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", spy)
    b = capa.open_bundle(v2_bundle)
    assert b.manifest["run_id"] == RUN_ID
    assert opened == []


def test_reading_needs_no_dataframe_library(v2_bundle):
    import subprocess

    # pandas, polars, xarray unimportable: all but to_pandas() & co works (40200 long rows,
    # 20100 wide rows, 5 events)
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pandas', 'polars', 'xarray', 'h5netcdf'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import capa\n"
        f"b = capa.open_bundle({str(v2_bundle)!r})\n"
        "n = len(b.samples()) + len(b.samples(layout='wide')) + len(b.events())\n"
        "t, v = b.series('tc1')\n"
        "try:\n"
        "    b.samples(['mass']).to_pandas()\n"
        "except ImportError as exc:\n"
        "    print(n, len(t), exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == (
        "60305 20000 to_pandas() needs the pandas library, which is not installed "
        "(pip install pandas)"
    )


def test_the_readme_one_liner(v1_bundle):
    import subprocess

    pytest.importorskip("pandas")
    run_id = v1_bundle.name
    # exactly the README's command, in a folder whose runs/ holds the bundle
    line = f"import capa; b = capa.open_bundle('runs/{run_id}'); print(b.samples().to_pandas())"
    out = subprocess.run(
        [sys.executable, "-c", line],
        cwd=v1_bundle.parent.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "[300 rows x 7 columns]" in out
    assert "furnace.process_value" in out


def test_wide_file_level_channels_fill_missing_field_metadata(tmp_path):
    bundle = tmp_path / "r1"
    (bundle / "samples" / "dev").mkdir(parents=True)
    facts = {"v": {"unit": "V", "kind": "voltage", "device": "dev", "field": "ai0"}}
    table = pa.table({"t_mono_ns": pa.array([0, 1], pa.int64()), "v": [1.0, 2.0]})
    table = table.replace_schema_metadata({"capa.channels": json.dumps(facts)})
    pq.write_table(table, bundle / "samples" / "dev" / "part-00000.parquet")
    manifest = {"run_id": "r1", "bundle_schema_version": 2, "started_utc": "x"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    info = capa.open_bundle(bundle).channels()["v"]
    assert (info.unit, info.kind, info.field, info.layout) == ("V", "voltage", "ai0", "wide")
    assert capa.open_bundle(bundle).utc_at_zero is None


def test_dataframe_conversions_carry_units_and_time(v2_bundle):
    b = capa.open_bundle(v2_bundle)
    frame = b.samples(["tc1", "mass"], start=1.0, end=1.5)  # long, from two tables
    pandas = pytest.importorskip("pandas")
    df = frame.to_pandas()
    assert isinstance(df, pandas.DataFrame)
    assert len(df) == 500 + 3
    assert df.attrs["units"] == {"tc1": "degC", "mass": "g"}
    pytest.importorskip("polars")
    assert frame.to_polars().height == 503
    pytest.importorskip("xarray")
    ds = frame.to_xarray()  # long -> wide, outer join
    assert ds.sizes["t_mono_ns"] == 503
    assert ds["tc1"].attrs["units"] == "degC"
    assert ds["mass"].attrs["device"] == "balance"
    assert int(np.isfinite(ds["mass"].values).sum()) == 3
    first = ds["t_utc"].values[0]
    assert first == np.datetime64("2026-05-24T14:32:01.250000", "ns")
