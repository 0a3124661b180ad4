"""`capa catalog query` over many bundles: how long the issue's example query takes.

    uv run python bench/query_across_runs.py [--bundles 100] [--rows 1000000] [--repeat 3] [--quick]

Builds a runs root of sealed-looking bundles in a temp dir: half version 1 (every sample in
a long `scalars.parquet`), half version 2 (a wide `samples/daq/part-*.parquet` table of
4 channels plus a small long file), `--rows` samples per bundle in total, a 20-event
`events.sqlite` each. Then times `capa.query.query()` (in process, fresh DuckDB each time,
as the CLI does) for: the `runs` view only, the example query (S-12, furnace_t > 600), a
full aggregate over `samples`, and `events`. Prints and writes bench/results/query.json.
The files were just written, so the page cache is warm.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

EXAMPLE = (
    "SELECT run_id, max(value) FROM runs JOIN samples USING (run_id) "
    "WHERE sample_id = 'S-12' AND channel = 'furnace_t' AND value > 600 GROUP BY run_id"
)
QUERIES = {
    "runs_only": "SELECT count(*) FROM runs WHERE sample_id = 'S-12'",
    "example": EXAMPLE,
    "samples_aggregate": "SELECT channel, count(*), avg(value) FROM samples GROUP BY channel",
    "events": "SELECT severity, count(*) FROM events GROUP BY severity",
}


def _manifest(run_id: str, version: int, sample: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "bundle_schema_version": version,
        "started_utc": "2026-01-01T00:00:00+00:00",
        "ended_utc": "2026-01-01T01:00:00+00:00",
        "run_status": "completed",
        "bundle_status": "sealed",
        "integrity": {"status": "ok", "algorithm": "sha256"},
        "operator": {"id": "bench"},
        "sample": {"id": sample},
        "procedure": {"id": "capa.builtin.free_run", "version": "1"},
        "tags": ["bench"],
    }


def _events(bundle: Path) -> None:
    conn = sqlite3.connect(bundle / "events.sqlite")
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, t_mono_ns INTEGER NOT NULL,"
        " t_utc TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL,"
        " message TEXT NOT NULL, metadata_json TEXT)"
    )
    conn.executemany(
        "INSERT INTO events (t_mono_ns, t_utc, kind, severity, source, message) "
        "VALUES (?, '2026-01-01T00:00:00+00:00', 'bench', ?, 'bench', 'x')",
        [(i, "warning" if i % 5 == 0 else "info") for i in range(20)],
    )
    conn.commit()
    conn.close()


def build(root: Path, bundles: int, rows: int) -> int:
    """Write the runs root; return its size in bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    for i in range(bundles):
        version = 1 if i % 2 == 0 else 2
        run_id = f"20260101T{i:06d}-b{i:03d}"
        bundle = root / run_id
        bundle.mkdir(parents=True)
        peak = 500 + 200 * rng.random()
        (bundle / "manifest.json").write_text(
            json.dumps(_manifest(run_id, version, "S-12" if i % 3 else "S-13"))
        )
        (bundle / "manifest.sha256").write_text("")
        _events(bundle)
        if version == 1:
            n = rows // 4
            t = np.repeat(np.arange(n, dtype=np.int64) * 1_000_000, 4)
            names = np.tile(np.array(["furnace_t", "hf", "mass", "tc"]), n)
            value = rng.random(n * 4) * peak
            table = pa.table(
                {
                    "t_mono_ns": t,
                    "channel": pa.array(names).dictionary_encode(),
                    "value": value,
                    "raw_value": pa.nulls(n * 4, pa.float64()),
                    "unit": pa.array(np.full(n * 4, "degC")).dictionary_encode(),
                    "status": pa.array(np.full(n * 4, "ok")).dictionary_encode(),
                    "source_field": pa.nulls(n * 4, pa.string()),
                }
            )
            pq.write_table(table, bundle / "scalars.parquet", compression="zstd")
            continue
        n = rows // 4
        folder = bundle / "samples" / "daq"
        folder.mkdir(parents=True)
        per_part = max(1, n // 2)
        for part, start in enumerate(range(0, n, per_part)):
            m = min(per_part, n - start)
            cols: dict[str, Any] = {"t_mono_ns": np.arange(start, start + m, dtype=np.int64)}
            fields = [pa.field("t_mono_ns", pa.int64(), nullable=False)]
            for ch in ("furnace_t", "hf", "mass", "tc"):
                cols[ch] = rng.random(m) * peak
                meta = {"capa.channel": ch, "capa.role": "value", "capa.unit": "degC"}
                fields.append(pa.field(ch, pa.float64(), metadata=meta))
                cols[f"{ch}.status"] = pa.array(np.full(m, "ok")).dictionary_encode()
                fields.append(pa.field(f"{ch}.status", pa.dictionary(pa.int32(), pa.string())))
            table = pa.table(cols, schema=pa.schema(fields))
            pq.write_table(table, folder / f"part-{part:05d}.parquet", compression="zstd")
        empty = pa.table(
            {
                "t_mono_ns": pa.array([], pa.int64()),
                "channel": pa.array([], pa.string()).dictionary_encode(),
                "value": pa.array([], pa.float64()),
                "unit": pa.array([], pa.string()).dictionary_encode(),
                "status": pa.array([], pa.string()).dictionary_encode(),
            }
        )
        pq.write_table(empty, bundle / "scalars.parquet")
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000, help="samples per bundle")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 bundles of 100 k rows, once")
    args = parser.parse_args()
    if args.quick:
        args.bundles, args.rows, args.repeat = 10, 100_000, 1
    from capa.query import query

    with tempfile.TemporaryDirectory(prefix="capa-bench-query-") as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        size = build(root, args.bundles, args.rows)
        print(
            f"built {args.bundles} bundles x {args.rows} rows, {size / 1e6:.0f} MB "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        figures: dict[str, Any] = {}
        for name, sql in QUERIES.items():
            walls = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = query(sql, root)
                walls.append(time.perf_counter() - t0)
            figures[name] = {
                "median_s": round(c.median(walls), 3),
                "runs_s": [round(w, 3) for w in walls],
                "result_rows": result.table.num_rows,
            }
            print(f"{name:18s} {c.median(walls):7.3f} s  ({result.table.num_rows} rows)")
    c.write_result(
        "query",
        {
            "bundles": args.bundles,
            "rows_per_bundle": args.rows,
            "total_rows": args.bundles * args.rows,
            "MB_on_disk": round(size / 1e6, 1),
            "queries": QUERIES,
            "figures": figures,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
