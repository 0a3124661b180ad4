"""capa export: each format read back with the standard tools, units carried along."""

from __future__ import annotations

import csv
import json
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import capa
from capa.cli import export as export_cli
from capa.cli.main import main
from capa.read.export import FORMATS

from .v2fixture import RUN_ID, V2Spec, wide_values


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def export(capsys, bundle, tmp_path, fmt, *extra):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    code, stdout, err = run_cli(
        capsys, "export", RUN_ID, "--format", fmt, "--runs-root", str(bundle.parent),
        "--out", str(out), "--json", *extra,
    )  # fmt: skip
    assert code == 0, err
    return json.loads(stdout)


def test_cli_formats_match_the_library():
    assert export_cli.FORMATS == FORMATS


def test_csv_with_a_sidecar_of_units(capsys, v2_bundle, tmp_path):
    summary = export(capsys, v2_bundle, tmp_path, "csv", "--channels", "tc1,mass", "--end", "2")
    with open(summary["path"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["t_mono_ns", "t_s", "t_utc", "tc1", "mass"]
    # 2 s of the 1 kHz table plus the 10 balance rows (each 1 us after a tick)
    assert len(rows) == summary["rows"] == 2000 + 10
    tc1 = [(int(r["t_mono_ns"]), float(r["tc1"])) for r in rows if r["tc1"] != ""]
    t = np.array([a for a, _ in tc1])
    assert np.allclose([b for _, b in tc1], wide_values(V2Spec(), t)["tc1"])
    mass_rows = [r for r in rows if r["mass"] != ""]
    assert len(mass_rows) == 10
    assert all(r["tc1"] == "" for r in mass_rows)  # outer join: no value at that instant
    meta = json.loads(Path(summary["metadata"]).read_text())
    assert meta["columns"]["tc1"]["unit"] == "degC"
    assert meta["columns"]["mass"]["unit"] == "g"
    assert meta["columns"]["t_mono_ns"]["unit"] == "ns"
    assert meta["clock"]["utc_at_zero"] == "2026-05-24T14:32:00.250000+00:00"
    assert rows[0]["t_utc"].startswith("2026-05-24 14:32:00.25")


def test_parquet_wide_keeps_units_in_the_file(capsys, v2_bundle, tmp_path):
    summary = export(capsys, v2_bundle, tmp_path, "parquet-wide")
    table = pq.read_table(summary["path"])
    assert table.num_rows == 20_000 + 100  # 20 s at 1 kHz + 100 balance/furnace instants
    hf = table.schema.field("hf").metadata
    assert hf[b"capa.unit"] == b"kW/m2"
    assert hf[b"capa.raw_unit"] == b"V"
    meta = table.schema.metadata
    assert meta[b"capa.utc_at_zero"] == b"2026-05-24T14:32:00.250000+00:00"
    assert json.loads(meta[b"capa.channels"])["mass"]["unit"] == "g"
    expected = capa.open_bundle(v2_bundle).samples(layout="wide").arrow
    assert table.column("t_mono_ns").equals(expected.column("t_mono_ns"))
    for name in ("tc1", "hf", "furnace_t", "mass"):
        assert table.column(name).equals(expected.column(name))


def test_parquet_wide_reads_in_polars_and_duckdb(capsys, v2_bundle, tmp_path):
    summary = export(capsys, v2_bundle, tmp_path, "parquet-wide", "--channels", "mass")
    polars = pytest.importorskip("polars")
    df = polars.read_parquet(summary["path"])
    assert df.height == summary["rows"] == 100
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"SELECT count(*) FROM '{summary['path']}' WHERE mass > 0").fetchone()[0]
    assert n == 100


def test_netcdf_has_units_and_absolute_time(capsys, v2_bundle, tmp_path):
    xr = pytest.importorskip("xarray")
    summary = export(capsys, v2_bundle, tmp_path, "netcdf", "--channels", "hf,mass", "--start", "3")
    with xr.open_dataset(summary["path"]) as ds:
        assert ds["hf"].attrs["units"] == "kW/m2"
        assert ds["hf"].attrs["capa_raw_unit"] == "V"
        assert ds["mass"].attrs["units"] == "g"
        t = ds["t_mono_ns"].values
        assert t.min() >= 3_000_000_000
        assert len(t) == summary["rows"]
        zero = np.datetime64("2026-05-24T14:32:00.250000", "ns")
        assert (ds["time"].values == zero + t.astype("timedelta64[ns]")).all()
        hf = ds["hf"].values
        ok = ~np.isnan(hf)
        assert np.allclose(hf[ok], wide_values(V2Spec(), t[ok])["hf"])
        assert ds.attrs["run_id"] == RUN_ID


def test_export_streams_each_row_group_once(v2_bundle, tmp_path):
    from capa.read.export import export_bundle, windows

    b = capa.open_bundle(v2_bundle)
    infos = b.select_channels(None)
    assert len(windows(b.sample_source(), infos, None, None)) > 10
    result = export_bundle(b, "parquet-wide", tmp_path / "x.parquet")
    total = sum(pq.ParquetFile(p).metadata.num_row_groups for p in b.sample_source().files(infos))
    assert result.stats.row_groups_total >= total  # footers are looked at per window
    assert result.stats.row_groups_read == total  # but every row group is read once


def test_missing_netcdf_library_is_one_line_exit_2(capsys, v2_bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5netcdf", None)
    out = tmp_path / "x.nc"
    code, _, err = run_cli(
        capsys, "export", str(v2_bundle), "--format", "netcdf", "--out", str(out)
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "capa: error: capa export --format netcdf needs the h5netcdf library, which is not "
        "installed (pip install 'capa[netcdf]')"
    ]
    assert not out.exists()
    assert list(tmp_path.glob(".x.nc*")) == []


def test_bad_requests_fail_cleanly(capsys, v2_bundle, tmp_path):
    code, _, err = run_cli(
        capsys,
        "export",
        str(v2_bundle),
        "--format",
        "csv",
        "--channels",
        "nope",
        "--out",
        str(tmp_path / "a.csv"),
    )
    assert code == 2
    assert "no channel 'nope'" in err
    assert not (tmp_path / "a.csv").exists()
    (tmp_path / "b.csv").write_text("keep")
    code, _, err = run_cli(
        capsys, "export", str(v2_bundle), "--format", "csv", "--out", str(tmp_path / "b.csv")
    )
    assert code == 2
    assert "file exists" in err
    assert (tmp_path / "b.csv").read_text() == "keep"
    code, _, err = run_cli(
        capsys, "export", str(v2_bundle), "--format", "csv", "--out", str(v2_bundle / "x.csv")
    )
    assert code == 2
    assert "inside the bundle" in err
    code, _, _ = run_cli(capsys, "export", str(v2_bundle))
    assert code == 64
    code, _, _ = run_cli(capsys, "export", str(v2_bundle), "--format", "xlsx")
    assert code == 64
    assert capa.open_bundle(v2_bundle).verify().ok


def test_v1_bundle_exports_too(capsys, v1_bundle, tmp_path):
    out = tmp_path / "v1.csv"
    code, _, err = run_cli(capsys, "export", str(v1_bundle), "--format", "csv", "--out", str(out))
    assert code == 0, err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100
    assert float(rows[10]["furnace_t"]) == pytest.approx(21.0)
    sidecar = json.loads(out.with_name("v1.csv.json").read_text())
    assert sidecar["columns"]["heat_flux"]["unit"] == "kW/m2"
    assert sidecar["columns"]["heat_flux"]["raw_unit"] == "V"
    zero = capa.open_bundle(v1_bundle).utc_at_zero
    second = zero + timedelta(milliseconds=100)
    assert rows[1]["t_mono_ns"] == "100000000"
    assert rows[1]["t_utc"] == f"{second:%Y-%m-%d %H:%M:%S.%f}000Z"
