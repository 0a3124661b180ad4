"""A real run records a block-mode device wide and a polled one long, every row accounted.

Runs the headless runtime in-process (pool, workers, conductor, writer, finalize) on a
core-only plugin host with ``capa.sim.signals`` in both modes and a derived channel of
the block device, then reads the sealed bundle back with pyarrow alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import capa
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.headless import run_headless

pytestmark = pytest.mark.slow

RATE = 2000
BLOCK = 200

RIG = f"""
name = "wide-run"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
mode = "polled"
rate_hz = 20
[devices.params.signals]
pv = {{ kind = "constant", unit = "degC", value = 25.0 }}

[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
resource = "daq"
mode = "block"
sample_rate_hz = {RATE}
block_size = {BLOCK}
[devices.params.signals]
hf = {{ kind = "constant", unit = "mV", value = 2.0 }}
load = {{ kind = "constant", unit = "V", value = 1.5 }}

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = {{ device = "oven", field = "pv" }}
plot_group = "temperature"

[[channels]]
name = "heat_flux"
kind = "heat_flux"
unit = "mV"
derived_unit = "kW/m2"
source = {{ device = "daq", field = "hf" }}
calibration = {{ kind = "linear", slope = 4.0 }}
keep_raw = true
plot_group = "heat flux"

[[channels]]
name = "mass"
kind = "mass"
unit = "V"
derived_unit = "g"
source = {{ device = "daq", field = "load" }}
calibration = {{ kind = "linear", points = [[1.0, 0.0], [2.0, 100.0]] }}

[[derived]]
name = "flux_per_g"
expression = "heat_flux / mass"
unit = "kW/m2/g"
kind = "derived"
plot_group = "heat flux"
"""

EXPERIMENT = """
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config: {duration_s: 1.0}
operator: {id: t}
sample: {id: S-1}
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wide-run")
    (tmp / "rig.toml").write_text(RIG)
    (tmp / "exp.yaml").write_text(EXPERIMENT)
    host = capa.PluginHost(builtin=True)
    host.load(entry_points=False)
    report = validate_experiment(tmp / "exp.yaml", host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main() -> capa.runtime.HeadlessResult:
        with anyio.fail_after(60):
            return await run_headless(plan, runs_root=tmp / "runs", host=host)

    result = anyio.run(main)
    assert result.exit_code() == 0, result.exit_reason
    assert result.bundle_path is not None
    return Path(result.bundle_path)


def wide(bundle: Path) -> pa.Table:
    parts = sorted((bundle / "samples" / "daq").glob("part-*.parquet"))
    assert parts
    return pa.concat_tables([pq.ParquetFile(p).read() for p in parts])


def test_block_device_is_one_wide_table_with_its_derived_channel(bundle: Path):
    table = wide(bundle)
    assert table.column_names == [
        "t_mono_ns",
        "heat_flux",
        "heat_flux.raw",
        "heat_flux.status",
        "mass",
        "mass.status",
        "flux_per_g",
        "flux_per_g.status",
    ]
    n = table.num_rows
    assert n > 0
    assert n % BLOCK == 0  # whole blocks only
    t = table.column("t_mono_ns").to_numpy()
    assert (np.diff(t) == 1_000_000_000 // RATE).all()  # one row per sample-clock tick
    assert table.column("heat_flux").to_numpy().tolist() == [8.0] * n  # 2 mV × 4
    assert table.column("heat_flux.raw").to_numpy().tolist() == [2.0] * n
    assert table.column("mass").to_numpy().tolist() == [50.0] * n  # 1.5 V on the line
    assert table.column("flux_per_g").to_numpy().tolist() == [8.0 / 50.0] * n
    assert set(table.column("mass.status").to_pylist()) == {"ok"}


def test_wide_columns_carry_the_channel_description(bundle: Path):
    schema = pq.ParquetFile(next((bundle / "samples" / "daq").glob("*.parquet"))).schema_arrow
    hf = schema.field("heat_flux").metadata
    assert hf[b"capa.unit"] == b"kW/m2"
    assert hf[b"capa.raw_unit"] == b"mV"
    assert hf[b"capa.kind"] == b"heat_flux"
    assert hf[b"capa.device"] == b"daq"
    assert hf[b"capa.field"] == b"hf"
    assert hf[b"capa.calibration"] == b"linear slope=4.0"
    assert hf[b"capa.plot_group"] == b"heat flux"
    assert schema.field("heat_flux.raw").metadata[b"capa.unit"] == b"mV"
    assert schema.field("mass").metadata[b"capa.calibration"] == (
        b"linear points=[[1.0,0.0],[2.0,100.0]]"
    )
    assert schema.field("flux_per_g").metadata[b"capa.device"] == b"derived"
    assert schema.metadata[b"capa.table"] == b"samples"
    assert schema.metadata[b"capa.device"] == b"daq"


def test_polled_device_stays_in_scalars_and_block_channels_do_not(bundle: Path):
    scalars = pq.ParquetFile(bundle / "scalars.parquet").read()
    channels = set(scalars.column("channel").to_pylist())
    assert channels == {"oven_pv"}


def test_every_tick_is_accounted_in_the_wide_stream(bundle: Path):
    m = json.loads((bundle / "manifest.json").read_text())
    acc = m["counts"]["accounting"]
    assert acc["status"] == "ok", acc
    daq = acc["devices"]["daq"]["samples/daq"]
    rows = wide(bundle).num_rows
    assert daq == {"emitted": rows, "written": rows, "dropped": {}}
    assert acc["files"]["samples/daq"] == {"rows_in_file": rows, "written": rows}
    # The worker counted the samples the adapter handed over: all of them are rows.
    workers = m["queue_health"]["runtime"]["workers"]
    assert workers["sim:daq"]["samples"] == rows
    oven = acc["devices"]["oven"]["scalars"]
    assert (
        oven["emitted"]
        == oven["written"]
        == pq.ParquetFile(bundle / "scalars.parquet").metadata.num_rows
    )


def test_duckdb_alone_tells_each_columns_unit_and_the_absolute_start(bundle: Path):
    """What a user with only DuckDB sees: file-level keys (no Arrow field metadata)."""
    duckdb = pytest.importorskip("duckdb")
    manifest = json.loads((bundle / "manifest.json").read_text())
    anchor = manifest["clock"]["utc_at_zero"]
    files = [bundle / "scalars.parquet", *sorted((bundle / "samples" / "daq").glob("*.parquet"))]
    con = duckdb.connect()
    for path in files:
        rows = con.execute(
            "SELECT decode(key), decode(value) FROM parquet_kv_metadata(?)", [str(path)]
        ).fetchall()
        keys = dict(rows)
        assert keys["capa.utc_at_zero"] == anchor, path
        channels = json.loads(keys["capa.channels"])
        if path.name == "scalars.parquet":
            assert channels["oven_pv"]["unit"] == "degC"
        else:
            assert channels["heat_flux"]["unit"] == "kW/m2"
            assert channels["heat_flux"]["raw_unit"] == "mV"
            assert channels["mass"]["unit"] == "g"
            assert channels["flux_per_g"]["device"] == "derived"
