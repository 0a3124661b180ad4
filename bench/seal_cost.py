"""Stop (close + seal) time and peak memory against run length (issue #15, items 1 and 3).

    uv run python bench/seal_cost.py [--values 10 40 120] [--channels 8] [--block 1000]
        [--layout wide|long] [--runs-root DIR] [--json FILE]

For each size (millions of *values* = sample-clock ticks x channels) a fresh Python
process writes one run straight through :class:`capa.bundle.writer.BundleWriter`:

- ``wide`` (default): a streamed device's blocks as :class:`capa.SampleRows` (``t_mono_ns``
  plus ``--channels`` float64 columns, 10 kS/s clock) and, beside them, a polled device as
  :class:`capa.ScalarRows` (4 channels at 10 Hz), as a schema-v2 run records them;
- ``long``: the same samples as ``ScalarRows`` only (the v1 layout, for comparison).

The producer submits as fast as the writer accepts (bounded queue: backpressure), then
waits until the writer has taken every record, and only then times ``writer.close()``
(drain the last records, close every table, write the manifest, hash, verify): that is the
stop cost a run pays after its last sample, as wall time and as the process's CPU time
(all threads; on a shared machine the CPU time is the steadier figure). Peak RSS is
reported for the whole process (``ru_maxrss``: record + seal), as the process's RSS when
``close`` starts, and as the peak
during ``close`` (``VmHWM`` after resetting it to the current RSS via
``/proc/self/clear_refs`` just before; Linux only). Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_FLAG = "--child"


def _vm_kb(key: str = "VmHWM") -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(values_m: float, channels: int, block: int, layout: str, root: Path) -> dict[str, object]:
    import numpy as np
    import pyarrow as pa

    from capa import SampleRows, ScalarRows
    from capa.bundle.schema import scalar_batch
    from capa.bundle.writer import BundleWriter

    period_ns = 100_000  # 10 kS/s
    names = [f"ai{c}" for c in range(channels)]
    rng = np.random.default_rng(1)
    ticks = int(values_m * 1e6) // channels
    n_blocks = max(1, ticks // block)
    base_t = np.arange(block, dtype=np.int64) * period_ns
    wide_schema = pa.schema(
        [pa.field("t_mono_ns", pa.int64(), nullable=False)]
        + [
            pa.field(n, pa.float64(), metadata={b"capa.role": b"value", b"capa.unit": b"V"})
            for n in names
        ]
    )
    if layout == "long":
        channel = pa.DictionaryArray.from_arrays(
            pa.array(np.tile(np.arange(channels, dtype=np.int32), block)), pa.array(names)
        )
        long_t = np.repeat(base_t, channels)

    writer = BundleWriter.open(root, flush_interval_s=1.0, use_catalog=False)
    start = time.perf_counter()
    cpu0 = time.process_time()
    polled_every = max(1, int(0.1e9 // (block * period_ns)))  # 10 Hz against the block rate
    submitted = 0
    for b in range(n_blocks):
        t0 = b * block * period_ns
        if layout == "wide":
            t = pa.array(base_t + t0)
            # Fresh noise every block: data that compresses like a real signal's.
            cols = [pa.array(v) for v in rng.normal(1.0, 0.05, (channels, block))]
            batch = pa.RecordBatch.from_arrays([t, *cols], schema=wide_schema)
            writer.submit(SampleRows(batch, device="daq", table="daq"))
        else:
            t = pa.array(long_t + t0)
            values = pa.array(rng.normal(1.0, 0.05, block * channels))
            batch = scalar_batch(t, channel, values, unit="V", source_field="daq.block")
            writer.submit(ScalarRows(batch, "daq"))
        submitted += batch.num_rows
        if b % polled_every == 0:
            tp = pa.array(np.full(4, t0, dtype=np.int64))
            polled = scalar_batch(tp, pa.array(["p0", "p1", "p2", "p3"]), pa.array([1.0] * 4))
            writer.submit(ScalarRows(polled, "ctl"))
            submitted += 4
    while writer.metrics().rows < submitted:  # the writer took every record
        time.sleep(0.005)
    record_s = time.perf_counter() - start
    record_cpu = time.process_time() - cpu0
    rss_record_kb = _vm_kb()
    rss_at_stop_kb = _vm_kb("VmRSS")
    reset = _reset_hwm()
    t_close = time.perf_counter()
    cpu_close = time.process_time()
    result = writer.close("completed")
    stop_s = time.perf_counter() - t_close
    stop_cpu_s = time.process_time() - cpu_close  # all threads of the process
    stop_hwm_kb = _vm_kb() if reset else None
    assert result is not None
    size = sum(p.stat().st_size for p in writer.bundle.rglob("*") if p.is_file())
    return {
        "values_m": values_m,
        "layout": layout,
        "ticks": n_blocks * block,
        "record_s": round(record_s, 2),
        "record_cpu_s": round(record_cpu, 2),
        "stop_s": round(stop_s, 3),
        "stop_cpu_s": round(stop_cpu_s, 3),
        "sealed_ok": result.ok,
        "bundle_mb": round(size / 1e6, 1),
        "rss_until_stop_mb": round((rss_record_kb or 0) / 1024, 1),
        "rss_at_stop_mb": round((rss_at_stop_kb or 0) / 1024, 1),
        "rss_stop_peak_mb": round(stop_hwm_kb / 1024, 1) if stop_hwm_kb else None,
        "counts_samples": result.manifest.counts.get("samples"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=float, nargs="+", default=[10, 40, 120])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--block", type=int, default=1000, help="ticks per SampleRows batch")
    parser.add_argument("--layout", choices=["wide", "long"], default="wide")
    parser.add_argument("--runs-root", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        assert args.runs_root is not None
        out = child(args.values[0], args.channels, args.block, args.layout, args.runs_root)
        print(json.dumps(out))
        return 0

    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    rows = []
    for values in args.values:
        root = Path(tempfile.mkdtemp(prefix="capa-seal-", dir=args.runs_root))
        cmd = [
            sys.executable, __file__, CHILD_FLAG, "--values", str(values),
            "--channels", str(args.channels), "--block", str(args.block),
            "--layout", args.layout, "--runs-root", str(root),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        assert proc.stdout is not None
        text = proc.stdout.read()
        proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{values} M values: child failed ({status})\n{text}")
            return 1
        row = json.loads(text.strip().splitlines()[-1])
        # ru_maxrss is in KiB on Linux: record + seal, the whole process.
        row["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
        rows.append(row)
        print(
            f"{values:>6g} M values ({row['layout']}): record {row['record_s']} s "
            f"({row['record_cpu_s']} CPU s), stop {row['stop_s']} s "
            f"({row['stop_cpu_s']} CPU s), "
            f"peak RSS {row['peak_rss_mb']} MB (at stop {row['rss_at_stop_mb']} MB, "
            f"peak during stop {row['rss_stop_peak_mb']} MB), "
            f"bundle {row['bundle_mb']} MB, sealed {row['sealed_ok']}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
