"""Bundles of schema version 2 written by hand, exactly as core/docs/bundle-schema.md says.

The reader is tested against these files rather than against capa's own writer, so it
reads the documented layout and not whatever the writer happens to produce.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from capa.bundle.events import EVENTS_DDL
from capa.bundle.integrity import write_checksums

RUN_ID = "20260524T143200-7f3a"
UTC_AT_ZERO = "2026-05-24T14:32:00.250000+00:00"

TEXT = pa.dictionary(pa.int32(), pa.string())


@dataclass
class WideChannel:
    name: str
    unit: str
    kind: str
    field: str
    raw_unit: str = ""
    calibration: str = "identity"
    plot_group: str = ""
    keep_raw: bool = False


@dataclass
class V2Spec:
    """What to put in the bundle."""

    wide_device: str = "daq"
    wide: Sequence[WideChannel] = field(
        default_factory=lambda: [
            WideChannel("tc1", "degC", "temperature", "ai0", "degC", "identity", "temps"),
            WideChannel(
                "hf",
                "kW/m2",
                "heat_flux",
                "ai1",
                "V",
                "linear slope=5000 intercept=0",
                "flux",
                keep_raw=True,
            ),
        ]
    )
    rate_hz: int = 1000
    seconds: int = 20
    rows_per_group: int = 2000
    rows_per_part: int = 10_000
    scalar_channels: Sequence[tuple[str, str, str, str, str]] = (
        # name, unit, kind, device, field
        ("furnace_t", "degC", "temperature", "furnace", "process_value"),
        ("mass", "g", "mass", "balance", "mass"),
    )
    scalar_rate_hz: int = 5


def _wide_meta(ch: WideChannel, device: str, role: str, unit: str) -> dict[str, str]:
    return {
        "capa.channel": ch.name,
        "capa.role": role,
        "capa.unit": unit,
        "capa.raw_unit": ch.raw_unit,
        "capa.kind": ch.kind,
        "capa.device": device,
        "capa.field": ch.field,
        "capa.calibration": ch.calibration,
        "capa.plot_group": ch.plot_group,
    }


def wide_schema(spec: V2Spec, part: int) -> pa.Schema:
    fields = [pa.field("t_mono_ns", pa.int64(), nullable=False)]
    for ch in spec.wide:
        fields.append(
            pa.field(
                ch.name, pa.float64(), metadata=_wide_meta(ch, spec.wide_device, "value", ch.unit)
            )
        )
        if ch.keep_raw:
            fields.append(
                pa.field(
                    f"{ch.name}.raw",
                    pa.float64(),
                    metadata=_wide_meta(ch, spec.wide_device, "raw", ch.raw_unit),
                )
            )
        fields.append(
            pa.field(
                f"{ch.name}.status", TEXT, metadata=_wide_meta(ch, spec.wide_device, "status", "")
            )
        )
    meta = {
        "capa.table": "samples",
        "capa.device": spec.wide_device,
        "capa.run_id": RUN_ID,
        "capa.bundle_schema_version": "2",
        "capa.part": str(part),
    }
    return pa.schema(fields, metadata=meta)


def wide_values(spec: V2Spec, t: np.ndarray) -> dict[str, np.ndarray]:
    """The value of each wide channel at ``t`` (so tests can check what they read)."""
    seconds = t / 1e9
    out = {}
    for i, ch in enumerate(spec.wide):
        out[ch.name] = 20.0 + i + seconds  # rises 1 unit per second: easy to check
    return out


def write_v2_bundle(root: Path, spec: V2Spec | None = None, *, seal: bool = True) -> Path:
    spec = spec or V2Spec()
    bundle = root / RUN_ID
    (bundle / "config").mkdir(parents=True)
    (bundle / "config" / "rig.toml").write_text('name = "v2-rig"\n', encoding="utf-8")
    # ---- wide samples, several parts, several row groups each
    n = spec.rate_hz * spec.seconds
    t_all = np.arange(n, dtype=np.int64) * (1_000_000_000 // spec.rate_hz)
    folder = bundle / "samples" / spec.wide_device
    folder.mkdir(parents=True)
    for part, first in enumerate(range(0, n, spec.rows_per_part)):
        t = t_all[first : first + spec.rows_per_part]
        values = wide_values(spec, t)
        schema = wide_schema(spec, part)
        arrays: list[pa.Array] = [pa.array(t)]
        for ch in spec.wide:
            arrays.append(pa.array(values[ch.name]))
            if ch.keep_raw:
                arrays.append(pa.array(values[ch.name] / 5000.0))
            status = pa.array(["ok"] * len(t)).dictionary_encode()
            arrays.append(status)
        table = pa.Table.from_arrays(arrays, schema=schema)
        pq.write_table(
            table,
            folder / f"part-{part:05d}.parquet",
            row_group_size=spec.rows_per_group,
            compression="zstd",
        )
    # ---- long scalars
    period = 1_000_000_000 // spec.scalar_rate_hz
    ts = np.arange(spec.seconds * spec.scalar_rate_hz, dtype=np.int64) * period + 1_000
    channels_meta = {}
    cols: dict[str, list] = {
        k: []
        for k in ("t_mono_ns", "channel", "value", "raw_value", "unit", "status", "source_field")
    }
    for name, unit, kind, device, fld in spec.scalar_channels:
        channels_meta[name] = {
            "channel": name,
            "role": "value",
            "unit": unit,
            "raw_unit": unit,
            "kind": kind,
            "device": device,
            "field": fld,
            "calibration": "identity",
            "plot_group": "temps" if kind == "temperature" else "",
        }
    for t in ts:
        for j, (name, unit, _k, device, fld) in enumerate(spec.scalar_channels):
            cols["t_mono_ns"].append(int(t))
            cols["channel"].append(name)
            cols["value"].append(100.0 * (j + 1) + t / 1e9)
            cols["raw_value"].append(None)
            cols["unit"].append(unit)
            cols["status"].append("ok")
            cols["source_field"].append(f"{device}.{fld}")
    schema = pa.schema(
        [
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field(
                "channel",
                TEXT,
                nullable=False,
                metadata={"capa.channels": json.dumps(channels_meta)},
            ),
            pa.field("value", pa.float64()),
            pa.field("raw_value", pa.float64()),
            pa.field("unit", TEXT),
            pa.field("status", TEXT, nullable=False),
            pa.field("source_field", pa.string()),
        ],
        metadata={
            "capa.table": "scalars",
            "capa.run_id": RUN_ID,
            "capa.bundle_schema_version": "2",
            "capa.channels": json.dumps(channels_meta),
        },
    )
    arrays = []
    for f in schema:
        arr = pa.array(cols[f.name])
        arrays.append(
            arr.dictionary_encode() if pa.types.is_dictionary(f.type) else arr.cast(f.type)
        )
    pq.write_table(
        pa.Table.from_arrays(arrays, schema=schema), bundle / "scalars.parquet", row_group_size=20
    )
    # ---- device records and frames
    (bundle / "device_records").mkdir()
    pq.write_table(
        pa.table(
            {
                "t_mono_ns": pa.array([1_000, 2_000_000_000], pa.int64()),
                "t_request_ns": pa.array([500, 1_999_999_000], pa.int64()),
                "t_receive_ns": pa.array([1_000, 2_000_000_000], pa.int64()),
                "raw": pa.array([b"+ 12.5 g\r\n", b"+ 12.4 g\r\n"], pa.binary()),
            }
        ),
        bundle / "device_records" / "sartorius.parquet",
    )
    (bundle / "video").mkdir()
    pq.write_table(
        pa.table(
            {
                "frame_idx": pa.array([0, 1, 2], pa.int64()),
                "t_mono_ns": pa.array([0, 200_000_000, 400_000_000], pa.int64()),
                "t_utc": ["a", "b", "c"],
                "capture_latency_s": [0.001, 0.001, 0.002],
            }
        ),
        bundle / "video" / "cam.frames.parquet",
    )
    # ---- events
    conn = sqlite3.connect(bundle / "events.sqlite")
    conn.executescript(EVENTS_DDL)
    rows = [
        (0, "2026-05-24T14:32:00.25+00:00", "run.started", "info", "conductor", "started", None),
        (5_000_000_000, "x", "method.step.started", "info", "method", "heat", '{"step": 1}'),
        (6_000_000_000, "x", "conductor.loop_lag", "warning", "conductor", "late", None),
        (9_000_000_000, "x", "method.step.ended", "info", "method", "heat", None),
        (12_000_000_000, "x", "device.comm_error", "error", "watlow:f", "timeout", None),
    ]
    conn.executemany(
        "INSERT INTO events (t_mono_ns, t_utc, kind, severity, source, message, metadata_json)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()
    (bundle / "run.log").write_text("", encoding="utf-8")
    manifest = {
        "run_id": RUN_ID,
        "bundle_schema_version": 2,
        "started_utc": UTC_AT_ZERO,
        "ended_utc": "2026-05-24T14:32:20.250000+00:00",
        "run_status": "completed",
        "bundle_status": "sealed" if seal else "open",
        "integrity": {"status": "ok" if seal else "unknown", "algorithm": "sha256"},
        "clock": {
            "utc_at_zero": UTC_AT_ZERO,
            "monotonic_origin_ns": 123_456_789,
            "method": "test fixture",
        },
        "recording": {
            "channels": [*(c[0] for c in spec.scalar_channels), *(c.name for c in spec.wide)]
        },
        "counts": {},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if seal:
        write_checksums(bundle)
    return bundle
