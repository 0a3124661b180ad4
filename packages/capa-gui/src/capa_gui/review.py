"""Review: the catalog of a runs root and one sealed run (manifest, integrity, data, events).

Everything here reads plain bundle files with standard tools (pyarrow, sqlite3) — the
same files an analyst opens — and never writes into a bundle.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import capa.embed
from capa_gui.frames import decimate_minmax

__all__ = ["list_runs", "run_detail", "run_series", "verify"]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
POINTS_PER_CHANNEL = 1000
"""Min/max buckets per channel in a review plot (so at most twice as many points)."""


def list_runs(
    runs_root: Path,
    *,
    status: str | None = None,
    operator: str | None = None,
    sample: str | None = None,
    tag: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    """Catalog rows matching every filter given, newest first.

    Raises:
        ValueError: ``since`` is not an ISO date.
    """
    if not (runs_root / "runs.sqlite").exists():
        return []
    moment = None
    if since:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise ValueError(f"since: {since!r} is not an ISO date (2026-05-24)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    cat = capa.embed.catalog(runs_root)
    rows = cat.runs(run_status=status or None, since=moment)
    out = []
    for row in reversed(rows):
        if operator and operator.lower() not in (row.operator or "").lower():
            continue
        if sample and sample.lower() not in (row.sample or "").lower():
            continue
        if tag and tag not in row.tags:
            continue
        out.append({**row.to_dict(), "bundle": str(cat.bundle_path(row))})
    return out


def _bundle(runs_root: Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id) or run_id in {".", ".."}:
        raise ValueError(f"{run_id!r} is not a run id")
    cat = capa.embed.catalog(runs_root)
    row = cat.get(run_id)
    bundle = cat.bundle_path(row) if row is not None else runs_root / run_id
    if not (bundle / "manifest.json").is_file():
        raise ValueError(f"run {run_id} has no bundle in {runs_root}")
    return bundle


def run_detail(runs_root: Path, run_id: str) -> dict[str, Any]:
    """Manifest summary, events, method timeline and video frame index of one run."""
    bundle = _bundle(runs_root, run_id)
    manifest = capa.embed.read_manifest(bundle)
    events = _events(bundle)
    timeline = _timeline(events)
    return {
        "run_id": run_id,
        "bundle": str(bundle),
        "sealed": (bundle / "manifest.sha256").exists(),
        "manifest": {
            key: manifest.get(key)
            for key in (
                "run_id",
                "started_utc",
                "ended_utc",
                "run_status",
                "bundle_status",
                "integrity",
                "exit_reason",
                "operator",
                "sample",
                "procedure",
                "tags",
                "counts",
                "recording",
                "cameras",
                "bundle_schema_version",
            )
        },
        "events": events,
        "timeline": timeline,
        "video": _video(bundle),
    }


def _events(bundle: Path) -> list[dict[str, Any]]:
    path = bundle / "events.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT t_mono_ns, t_utc, kind, severity, source, message, metadata_json "
            "FROM events ORDER BY t_mono_ns, id"
        ).fetchall()
    finally:
        conn.close()
    out = []
    for t, t_utc, kind, severity, source, message, meta in rows:
        try:
            metadata = json.loads(meta) if meta else {}
        except ValueError:
            metadata = {"unparsed": meta}
        out.append(
            {
                "t_s": t / 1e9,
                "t_utc": t_utc,
                "kind": kind,
                "severity": severity,
                "source": source,
                "message": message,
                "metadata": metadata,
            }
        )
    return out


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method step: when it was entered, when it ended and how."""
    steps: dict[Any, dict[str, Any]] = {}
    for ev in events:
        meta = ev["metadata"] if isinstance(ev["metadata"], dict) else {}
        index = meta.get("index")
        if ev["kind"] == "method.step.entered":
            steps[(index, len(steps))] = {
                "index": index,
                "kind": meta.get("kind", ""),
                "label": ev["message"],
                "start_s": ev["t_s"],
                "end_s": None,
                "outcome": "running",
            }
        elif ev["kind"] in ("method.step.exited", "method.step.failed"):
            for key in reversed(list(steps)):
                if key[0] == index and steps[key]["end_s"] is None:
                    steps[key]["end_s"] = ev["t_s"]
                    steps[key]["outcome"] = meta.get("outcome") or (
                        "failed" if ev["kind"].endswith("failed") else "completed"
                    )
                    break
    return list(steps.values())


def _video(bundle: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    out = []
    for path in sorted((bundle / "video").glob("*.frames.parquet")):
        table = pq.read_table(path)
        t = table.column("t_mono_ns").to_numpy() / 1e9 if "t_mono_ns" in table.column_names else []
        idx = table.column("frame_idx").to_pylist() if "frame_idx" in table.column_names else []
        step = max(1, len(idx) // 200)
        videos = [p.name for p in (bundle / "video").glob(path.name.split(".")[0] + ".*")]
        out.append(
            {
                "camera": path.name.split(".")[0],
                "frames": table.num_rows,
                "first_s": float(t[0]) if len(t) else None,
                "last_s": float(t[-1]) if len(t) else None,
                "files": sorted(v for v in videos if not v.endswith(".parquet")),
                "index": [[int(idx[i]), float(t[i])] for i in range(0, len(idx), step)],
            }
        )
    return out


def run_series(runs_root: Path, run_id: str) -> dict[str, Any]:
    """Every recorded channel of one run, min/max-decimated, with units."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    bundle = _bundle(runs_root, run_id)
    series: dict[str, dict[str, Any]] = {}
    path = bundle / "scalars.parquet"
    if path.exists():
        table = pq.read_table(path)
        names = table.column_names
        if "channel" in names:
            channel = table.column("channel").combine_chunks()
            if hasattr(channel, "dictionary_decode"):
                channel = channel.dictionary_decode()
            units = table.column("unit") if "unit" in names else None
            for name in pc.unique(channel).to_pylist():
                mask = pc.equal(channel, name)
                sub = table.filter(mask)
                t = sub.column("t_mono_ns").to_numpy() / 1e9
                v = sub.column("value").to_numpy()
                order = np.argsort(t, kind="stable")
                dt, dv = decimate_minmax(t[order], v[order], POINTS_PER_CHANNEL)
                unit = ""
                if units is not None and sub.num_rows:
                    unit = str(sub.column("unit")[0].as_py())
                series[str(name)] = {"t": dt, "v": dv, "unit": unit, "rows": sub.num_rows}
        else:  # a wide layout: one column per channel
            t = table.column("t_mono_ns").to_numpy() / 1e9
            for name in names:
                if name == "t_mono_ns":
                    continue
                v = table.column(name).to_numpy(zero_copy_only=False)
                dt, dv = decimate_minmax(t, v, POINTS_PER_CHANNEL)
                series[name] = {"t": dt, "v": dv, "unit": "", "rows": len(v)}
    series.update(_wide_series(bundle))
    return {"run_id": run_id, "series": series}


def _wide_series(bundle: Path) -> dict[str, dict[str, Any]]:
    """The channels of the wide ``samples/<device>/part-*.parquet`` tables (schema v2)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from capa_gui.frames import wide_value_columns

    series: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in (bundle / "samples").glob("*") if p.is_dir()):
        parts = sorted(folder.glob("part-*.parquet"))
        if not parts:
            continue
        table = pa.concat_tables([pq.ParquetFile(p).read() for p in parts])
        t = table.column("t_mono_ns").to_numpy() / 1e9
        for name in wide_value_columns(table.schema):
            column = table.column(name)
            keep = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            v = column.to_numpy(zero_copy_only=False)[keep]
            tv = t[keep]
            order = np.argsort(tv, kind="stable")
            dt, dv = decimate_minmax(tv[order], v[order], POINTS_PER_CHANNEL)
            meta = table.schema.field(name).metadata or {}
            unit = meta.get(b"capa.unit", b"").decode()
            series[name] = {"t": dt, "v": dv, "unit": unit, "rows": len(v)}
    return series


def verify(runs_root: Path, run_id: str) -> dict[str, Any]:
    """Re-hash the bundle against its ``manifest.sha256`` (as ``capa catalog verify``)."""
    bundle = _bundle(runs_root, run_id)
    result = capa.embed.verify_bundle(bundle)
    return {
        "run_id": run_id,
        "status": result.status.value,
        "ok": result.ok,
        "checked": result.checked,
        "describe": result.describe(),
    }
