"""`capa report` on a long wide channel: time and peak memory against the row count.

    uv run python bench/report_large.py [--rows 100000000] [--keep DIR]

Writes a schema-v2 bundle by hand (core/docs/bundle-schema.md: one device, one channel
``wave`` at 1 kS/s with one spike, Parquet parts of 10 M rows in 1 M-row groups, written
part by part so this script never holds the series), then times the report in a child
process and records its peak RSS (ru_maxrss of the child). For scale it also records the
child's peak RSS when the same channel is read whole with ``Bundle.series`` (what a
report that loaded the series would need). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

RUN_ID = "20260101T000000-bench"
PART_ROWS = 10_000_000
GROUP_ROWS = 1_000_000


def write_bundle(root: Path, rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    bundle = root / RUN_ID
    folder = bundle / "samples" / "daq"
    folder.mkdir(parents=True)
    meta = {
        "capa.channel": "wave", "capa.role": "value", "capa.unit": "V", "capa.raw_unit": "V",
        "capa.kind": "voltage", "capa.device": "daq", "capa.field": "ai0",
        "capa.calibration": "identity", "capa.plot_group": "signals",
    }  # fmt: skip
    schema = pa.schema(
        [pa.field("t_mono_ns", pa.int64(), nullable=False),
         pa.field("wave", pa.float64(), metadata=meta)],
        metadata={"capa.table": "samples", "capa.device": "daq", "capa.run_id": RUN_ID,
                  "capa.bundle_schema_version": "2"},
    )  # fmt: skip
    spike = rows // 3
    for part, first in enumerate(range(0, rows, PART_ROWS)):
        with pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema) as writer:
            for lo in range(first, min(rows, first + PART_ROWS), GROUP_ROWS):
                hi = min(rows, lo + GROUP_ROWS, first + PART_ROWS)
                i = np.arange(lo, hi)
                v = np.sin(i / 50_000.0) + 0.01 * np.sin(i / 7.0)
                if lo <= spike < hi:
                    v[spike - lo] = 25.0
                writer.write_table(pa.table({"t_mono_ns": i * 1_000_000, "wave": v}, schema))
    seconds = rows / 1000
    manifest = {
        "run_id": RUN_ID, "bundle_schema_version": 2, "run_status": "completed",
        "bundle_status": "sealed", "started_utc": "2026-01-01T00:00:00+00:00",
        "ended_utc": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1767225600 + seconds)),
        "recording": {"channels": ["wave"], "devices": ["daq"]},
        "counts": {"samples": {"daq": {"rows": rows, "channels": {"wave": rows}}}},
    }  # fmt: skip
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    import sqlite3

    with sqlite3.connect(bundle / "events.sqlite") as conn:
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, t_mono_ns INTEGER NOT "
            "NULL, t_utc TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL, source "
            "TEXT NOT NULL, message TEXT NOT NULL, metadata_json TEXT)"
        )
    conn.close()
    listing = ""
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        listing += f"{digest.hexdigest()}  {path.relative_to(bundle).as_posix()}\n"
    (bundle / "manifest.sha256").write_text(listing)
    return bundle


CHILD_REPORT = """
import sys
from pathlib import Path
from capa_report.build import write_report
from capa_report.source import open_run
written = write_report(open_run(sys.argv[1]), Path(sys.argv[2]))
print(len(written.figures), written.integrity.status)
"""

CHILD_WHOLE = """
import sys, capa
t, v = capa.open_bundle(sys.argv[1]).series("wave")
print(len(t), float(v.max()))
"""


def child(code: str, *args: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of a fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run the smaller one first.
    return wall, max(peak, before) / 1024, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the bundle here")
    parser.add_argument("--skip-whole", action="store_true", help="skip the whole-read figure")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="capa-bench-report-"))
    try:
        root = args.keep or work
        t0 = time.perf_counter()
        bundle = write_bundle(root, args.rows)
        written_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in bundle.rglob("*.parquet"))
        wall, rss, out = child(CHILD_REPORT, str(bundle), str(work / "report"))
        result = {
            "rows": args.rows,
            "parquet_MB": round(size / 1e6, 1),
            "bundle_write_s": round(written_s, 1),
            "report_s": round(wall, 2),
            "report_rows_per_s": round(args.rows / wall),
            "report_peak_rss_MiB": round(rss, 1),
            "report_output": out,
        }
        if not args.skip_whole:
            wall_whole, rss_whole, out_whole = child(CHILD_WHOLE, str(bundle))
            result |= {
                "whole_series_s": round(wall_whole, 2),
                "whole_series_peak_rss_MiB": round(rss_whole, 1),
                "whole_series_output": out_whole,
            }
        print(json.dumps(result, indent=2))
        c.write_result("report_large", {"result": result}, args.json.parent if args.json else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the scratch folder this run made


if __name__ == "__main__":
    main()
