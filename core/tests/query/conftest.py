"""A runs root with real runs of the simulated furnace, one bundle of schema version 2
built to the spec (core/docs/bundle-schema.md) with pyarrow, and one bundle still open.

Real runs (``capa run`` of a ``capa.sim.signals`` furnace ramping at different rates):

- ``hot12``: sample S-12, ramps from 560 degC at 100 degC/s for 1 s (crosses 600);
- ``cool12``: sample S-12, ramps from 300 degC at 10 degC/s (stays below 600);
- ``hot13``: sample S-13, same ramp as ``hot12`` (crosses 600, other sample).

Built: ``v2hot12`` (S-12, version 2: ``furnace_t`` in a wide ``samples/daq`` table, above
600 in its second part) and ``open12`` (a copy of ``hot12`` whose manifest says ``open``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import capa
import capa.cli.common
from capa.cli.main import main

RIG = """
name = "query-furnace"

[[devices]]
name = "furnace"
adapter = "capa.sim.signals"
[devices.params]
rate_hz = 20
[devices.params.signals]
pv = {{ kind = "ramp", unit = "degC", start = {start}, rate_per_s = {rate} }}

[[channels]]
name = "furnace_t"
kind = "temperature"
unit = "degC"
source = {{ device = "furnace", field = "pv" }}
plot_group = "temperature"

[[channels]]
name = "furnace_f"
kind = "temperature"
unit = "degC"
derived_unit = "degF"
source = {{ device = "furnace", field = "pv" }}
calibration = {{ kind = "linear", slope = 1.8, intercept = 32.0 }}

[[derived]]
name = "furnace_rise"
expression = "furnace_t - 25"
unit = "degC"
kind = "temperature"
"""

EXPERIMENT = """
hardware: rig.toml
procedure:
  id: capa.builtin.free_run
  config: {{duration_s: 1}}
operator: {{id: {operator}, display_name: {operator_name}}}
sample: {{id: {sample}, notes: {notes}}}
tags: [{tags}]
"""

V2_RUN = "20260102T000000-v2aa"


@dataclass(frozen=True)
class QueryRoot:
    """The shared runs root and the run id of each named run."""

    root: Path
    ids: dict[str, str]


def run_capa(*args: object) -> tuple[int, str, str]:
    """``capa ARGS`` in-process; (exit code, stdout, stderr) via capfd-free redirection."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), out.getvalue(), err.getvalue()


def _real_run(work: Path, runs: Path, name: str, **fields: object) -> str:
    exp_dir = work / name
    exp_dir.mkdir()
    (exp_dir / "rig.toml").write_text(RIG.format(start=fields["start"], rate=fields["rate"]))
    (exp_dir / "experiment.yaml").write_text(EXPERIMENT.format(**fields))
    code, out, err = run_capa("run", exp_dir / "experiment.yaml", "--runs-root", runs)
    assert code == 0, out + err
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return rows["run_id"].strip()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wide_part(
    part: int, t0: int, values: list[float | None], status: list[str | None]
) -> pa.Table:
    """One ``samples/daq`` part exactly as the spec describes it."""
    n = len(values)

    def meta(channel: str, role: str, unit: str, **extra: str) -> dict[bytes, bytes]:
        base = {
            "capa.channel": channel,
            "capa.role": role,
            "capa.unit": unit,
            "capa.raw_unit": "mV",
            "capa.kind": "temperature",
            "capa.device": "daq",
            "capa.field": "tc0",
            "capa.calibration": "linear gain=25 offset=0",
            "capa.plot_group": "temperature",
            **extra,
        }
        return {k.encode(): v.encode() for k, v in base.items()}

    hf = [None if i % 3 == 0 else 0.01 * i for i in range(n)]  # a channel with gaps
    fields = [
        pa.field("t_mono_ns", pa.int64(), nullable=False),
        pa.field("furnace_t", pa.float64(), metadata=meta("furnace_t", "value", "degC")),
        pa.field("furnace_t.raw", pa.float64(), metadata=meta("furnace_t", "raw", "mV")),
        pa.field(
            "furnace_t.status",
            pa.dictionary(pa.int32(), pa.string()),
            metadata=meta("furnace_t", "status", ""),
        ),
        pa.field(
            "hf",
            pa.float64(),
            metadata=meta("hf", "value", "kW/m2", **{"capa.kind": "heat_flux", "capa.field": "hf"}),
        ),
        pa.field("hf.status", pa.dictionary(pa.int32(), pa.string())),
    ]
    schema = pa.schema(
        fields,
        metadata={
            "capa.table": "samples",
            "capa.device": "daq",
            "capa.run_id": V2_RUN,
            "capa.bundle_schema_version": "2",
            "capa.part": str(part),
        },
    )
    return pa.table(
        [
            pa.array([t0 + i * 1_000_000 for i in range(n)], pa.int64()),
            pa.array(values, pa.float64()),
            pa.array([None if v is None else v / 25 for v in values], pa.float64()),
            pa.array(status, pa.string()).dictionary_encode(),
            pa.array(hf, pa.float64()),
            pa.array([None if v is None else "ok" for v in hf], pa.string()).dictionary_encode(),
        ],
        schema=schema,
    )


def build_v2_bundle(root: Path) -> Path:
    """A sealed version-2 bundle of sample S-12 whose wide ``furnace_t`` exceeds 600."""
    bundle = root / V2_RUN
    (bundle / "samples" / "daq").mkdir(parents=True)
    (bundle / "config").mkdir()
    part0 = _wide_part(0, 0, [500.0 + i for i in range(10)], ["ok"] * 10)
    values1: list[float | None] = [595.0, 601.5, None, 640.0, 612.0, None]
    status1: list[str | None] = ["ok", "ok", "sensor_fail", "ok", "overload", None]
    part1 = _wide_part(1, 10_000_000, values1, status1)
    pq.write_table(part0, bundle / "samples" / "daq" / "part-00000.parquet", compression="zstd")
    pq.write_table(part1, bundle / "samples" / "daq" / "part-00001.parquet", compression="zstd")
    channels = {
        "furnace_sp": {
            "unit": "degC",
            "raw_unit": "degC",
            "kind": "setpoint",
            "device": "oven",
            "field": "setpoint",
            "calibration": "identity",
            "plot_group": "temperature",
        }
    }
    text_dict = pa.dictionary(pa.int32(), pa.string())
    scalars_schema = pa.schema(
        [
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field(
                "channel",
                text_dict,
                nullable=False,
                metadata={"capa.channels": json.dumps(channels)},
            ),
            pa.field("value", pa.float64()),
            pa.field("raw_value", pa.float64()),
            pa.field("unit", text_dict),
            pa.field("status", text_dict, nullable=False),
            pa.field("source_field", pa.string()),
        ],
        metadata={
            "capa.table": "scalars",
            "capa.run_id": V2_RUN,
            "capa.bundle_schema_version": "2",
            "capa.channels": json.dumps(channels),
            "capa.sorted": "true",
        },
    )
    scalars = pa.table(
        [
            pa.array([0, 200_000_000, 400_000_000], pa.int64()),
            pa.array(["furnace_sp"] * 3).dictionary_encode(),
            pa.array([650.0, 650.0, 650.0]),
            pa.array([None, None, None], pa.float64()),
            pa.array(["degC"] * 3).dictionary_encode(),
            pa.array(["ok"] * 3).dictionary_encode(),
            pa.array(["oven.setpoint"] * 3),
        ],
        schema=scalars_schema,
    )
    pq.write_table(scalars, bundle / "scalars.parquet", compression="zstd")
    conn = sqlite3.connect(bundle / "events.sqlite")
    conn.executescript(
        """CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, t_mono_ns INTEGER NOT NULL,
        t_utc TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL,
        message TEXT NOT NULL, metadata_json TEXT);"""
    )
    conn.executemany(
        "INSERT INTO events (t_mono_ns, t_utc, kind, severity, source, message, metadata_json)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (0, "2026-01-02T00:00:00+00:00", "free_run.started", "info", "procedure:x", "go", "{}"),
            (
                12_000_000,
                "2026-01-02T00:00:00.012+00:00",
                "loop_lag",
                "warning",
                "runtime",
                "event loop lagged 80 ms",
                '{"lag_ms": 80}',
            ),
        ],
    )
    conn.commit()
    conn.close()
    (bundle / "run.log").write_text("")
    (bundle / "config" / "rig.toml").write_text("name = 'v2-rig'\n")
    manifest = {
        "run_id": V2_RUN,
        "bundle_schema_version": 2,
        "started_utc": "2026-01-02T00:00:00.000000+00:00",
        "ended_utc": "2026-01-02T00:00:01.000000+00:00",
        "run_status": "completed",
        "bundle_status": "sealed",
        "integrity": {"status": "ok", "algorithm": "sha256"},
        "exit_reason": "",
        "operator": {"id": "bob", "display_name": "Bob B"},
        "sample": {"id": "S-12", "material": "PMMA", "notes": "wide daq"},
        "procedure": {"id": "capa.builtin.free_run", "version": "0.3.0"},
        "tags": ["v2", "furnace"],
        "custom": {},
        "capa": {"version": "0.3.0"},
        "clock": {
            "utc_at_zero": "2026-01-02T00:00:00.000000+00:00",
            "monotonic_origin_ns": 123,
            "method": "test fixture",
        },
        "counts": {
            "scalars": {"rows": 3},
            "samples": {"daq": {"rows": 16, "parts": 2, "channels": {"furnace_t": 14, "hf": 10}}},
            "events": 2,
        },
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.sha256")
    (bundle / "manifest.sha256").write_text(
        "".join(f"{_sha256(p)}  {p.relative_to(bundle).as_posix()}\n" for p in files)
    )
    return bundle


def build_open_copy(root: Path, source: str) -> str:
    """A copy of a sealed bundle whose manifest says it is still open (never sealed)."""
    run_id = "29990101T000000-open"
    bundle = root / run_id
    shutil.copytree(root / source, bundle)
    (bundle / "manifest.sha256").unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(
        run_id=run_id,
        run_status="running",
        bundle_status="open",
        integrity={"status": "unknown", "algorithm": "sha256"},
        ended_utc=None,
    )
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_id


@pytest.fixture(scope="session")
def query_root(tmp_path_factory: pytest.TempPathFactory) -> QueryRoot:
    """The runs root described in this module's docstring (built once per session)."""
    work = tmp_path_factory.mktemp("query")
    runs = work / "runs"
    host = capa.PluginHost(builtin=True)
    host.load(entry_points=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(capa.cli.common, "_host", host)
        mp.setenv("HOME", str(work / "home"))
        mp.delenv("CAPA_PLUGIN_MODE", raising=False)
        mp.delenv("CAPA_RUNS_ROOT", raising=False)
        common = {"operator": "ada", "operator_name": "Ada L", "notes": "first try"}
        ids = {
            "hot12": _real_run(
                work,
                runs,
                "hot12",
                start=560.0,
                rate=100.0,
                sample="S-12",
                tags="furnace, hot",
                **common,
            ),
            "cool12": _real_run(
                work,
                runs,
                "cool12",
                start=300.0,
                rate=10.0,
                sample="S-12",
                tags="furnace",
                operator="cy",
                operator_name="Cy D",
                notes="cooler",
            ),
            "hot13": _real_run(
                work,
                runs,
                "hot13",
                start=560.0,
                rate=100.0,
                sample="S-13",
                tags="hot",
                **common,
            ),
        }
    build_v2_bundle(runs)
    ids["v2hot12"] = V2_RUN
    ids["open12"] = build_open_copy(runs, ids["hot12"])
    return QueryRoot(runs, ids)
