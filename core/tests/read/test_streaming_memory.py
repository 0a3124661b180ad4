"""A 10 s window of a 20 M-row bundle reads one row group, not the file (issue 17).

Measured, not timed: the Arrow memory pool's peak in a fresh process that opens the
bundle and reads the window, against the size of the whole table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .v2fixture import RUN_ID, V2Spec, WideChannel, wide_schema

pytestmark = pytest.mark.slow

ROWS = 20_000_000
GROUP = 1_000_000  # rows per row group: 1 ms ticks, so 1000 s per group
TABLE_BYTES = ROWS * 16  # int64 time + float64 value


def _write_big_bundle(root):
    spec = V2Spec(wide_device="fast", wide=[WideChannel("x", "V", "voltage", "ai0", "V")])
    bundle = root / RUN_ID
    folder = bundle / "samples" / "fast"
    folder.mkdir(parents=True)
    schema = wide_schema(spec, 0)
    with pq.ParquetWriter(folder / "part-00000.parquet", schema, compression="zstd") as w:
        for first in range(0, ROWS, GROUP):
            t = np.arange(first, first + GROUP, dtype=np.int64) * 1_000_000
            x = np.sin(t / 1e9)
            status = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(GROUP, dtype=np.int32)), pa.array(["ok"])
            )
            w.write_table(
                pa.Table.from_arrays([pa.array(t), pa.array(x), status], schema=schema),
                row_group_size=GROUP,
            )
    manifest = {
        "run_id": RUN_ID,
        "bundle_schema_version": 2,
        "started_utc": "2026-05-24T14:32:00+00:00",
        "clock": {"utc_at_zero": "2026-05-24T14:32:00+00:00", "monotonic_origin_ns": 0,
                  "method": "test"},
    }  # fmt: skip
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


PROBE = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    import capa
    b = capa.open_bundle(sys.argv[1])
    frame = b.samples(["x"], start=12_345.0, end=12_355.0)
    t, v = b.series("x", start=12_345.0, end=12_355.0)
    print(json.dumps({
        "rows": len(frame),
        "series": len(t),
        "groups_read": frame.stats.row_groups_read,
        "groups_total": frame.stats.row_groups_total,
        "peak_bytes": pa.default_memory_pool().max_memory(),
    }))
    """
)


def test_a_window_of_a_20m_row_bundle_stays_small(tmp_path):
    bundle = _write_big_bundle(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(bundle)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["rows"] == got["series"] == 10_000  # 10 s at 1 kHz
    assert got["groups_total"] == ROWS // GROUP
    assert got["groups_read"] == 1
    # one row group is 16 MB of time and values; the table is 320 MB
    assert got["peak_bytes"] < TABLE_BYTES / 8, got
