"""Bundle writer and finalize throughput for one long simulated run.

    uv run python bench/bundle_throughput.py [--rows 10000000] [--batch-rows 8000]
        [--channels 8] [--flush-interval 1.0] [--runs-root DIR] [--keep] [--json FILE]

A producer thread submits ``scalars`` batches shaped like a hardware-clocked DAQ block
(``--channels`` channels interleaved, one timestamp per scan, status/unit dictionaries)
as fast as the writer accepts them; the queue is bounded, so the producer is throttled by
the writer (backpressure) and the figures are the writer's sustained rate. Batches are
prepared before timing starts except for the time and value columns, which get one
vectorised add each per batch (that cost, small, is counted). Then ``finalize_bundle``
turns the in-flight Arrow IPC stream into sorted zstd Parquet, writes ``manifest.sha256``
and verifies it.

Reports: writer rows/s, MB/s (bytes appended to the in-flight stream), CPU seconds per
million rows (process CPU time, all threads, divided by rows), queue high-water, drops;
finalize rows/s and MB/s of input, and its phases. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path


def build_templates(batch_rows: int, channels: int) -> tuple[object, object]:
    import pyarrow as pa

    from capa.bundle.schema import scalar_batch

    scans = batch_rows // channels
    rows = scans * channels
    t = pa.array([(i // channels) * 1_000 for i in range(rows)], pa.int64())  # 1 MHz scans
    names = [f"ai{c}" for c in range(channels)]
    channel = pa.DictionaryArray.from_arrays(
        pa.array([i % channels for i in range(rows)], pa.int32()), pa.array(names)
    )
    rng = random.Random(1)
    values = pa.array([rng.gauss(1.0, 0.05) for _ in range(rows)], pa.float64())
    template = scalar_batch(t, channel, values, unit="V", source_field="daq.block")
    return template, t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=8_000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--runs-root", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the bundle afterwards")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.compute as pc

    from capa import ScalarRows
    from capa.bundle.finalize import finalize_bundle
    from capa.bundle.writer import BundleWriter

    root = args.runs_root or Path(tempfile.mkdtemp(prefix="capa-bench-"))
    template, t0 = build_templates(args.batch_rows, args.channels)
    rows_per_batch = template.num_rows
    n_batches = max(1, args.rows // rows_per_batch)
    total_rows = n_batches * rows_per_batch
    scan_span = (rows_per_batch // args.channels) * 1_000

    writer = BundleWriter.open(
        root, flush_interval_s=args.flush_interval, queue_size=args.queue_size
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    t_index = template.schema.get_field_index("t_mono_ns")
    v_index = template.schema.get_field_index("value")
    v0 = template.column(v_index)
    for b in range(n_batches):
        # fresh times and values per batch (vectorised) so Parquet sees realistic entropy
        t = pc.add(t0, pa.scalar(b * scan_span, pa.int64()))
        v = pc.add(v0, pa.scalar(b * 1e-3))
        batch = template.set_column(t_index, "t_mono_ns", t).set_column(v_index, "value", v)
        writer.submit(ScalarRows(batch))
    writer.close("completed", finalize=False)  # drains the queue and fsyncs
    wall_w, cpu_w = time.perf_counter() - wall0, time.process_time() - cpu0
    manifest = json.loads((writer.bundle / "manifest.json").read_text())
    health = manifest["queue_health"]
    in_flight_bytes = health["bytes"]

    cpu1, wall1 = time.process_time(), time.perf_counter()
    result = finalize_bundle(writer.bundle)
    wall_f, cpu_f = time.perf_counter() - wall1, time.process_time() - cpu1
    parquet_bytes = (writer.bundle / "scalars.parquet").stat().st_size

    figures = {
        "rows": total_rows,
        "batch_rows": rows_per_batch,
        "channels": args.channels,
        "flush_interval_s": args.flush_interval,
        "queue_size": args.queue_size,
        "writer_s": round(wall_w, 3),
        "writer_rows_per_s": round(total_rows / wall_w),
        "writer_MB_per_s": round(in_flight_bytes / wall_w / 1e6, 1),
        "writer_cpu_s_per_million_rows": round(cpu_w / total_rows * 1e6, 4),
        "in_flight_MB": round(in_flight_bytes / 1e6, 1),
        "flushes": health["flushes"],
        "max_flush_s": health["max_flush_s"],
        "queue_high_water": health["queue_high_water"],
        "dropped_rows": health["dropped_rows"],
        "finalize_s": round(wall_f, 3),
        "finalize_rows_per_s": round(total_rows / wall_f),
        "finalize_MB_in_per_s": round(in_flight_bytes / wall_f / 1e6, 1),
        "finalize_cpu_s": round(cpu_f, 3),
        "parquet_MB": round(parquet_bytes / 1e6, 1),
        "sealed": result.ok,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus",
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(writer.bundle)
        if args.runs_root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
