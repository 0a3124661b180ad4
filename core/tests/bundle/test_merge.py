"""Finalize's bounded merge of interleaved, per-device sorted batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from capa.bundle.merge import sorted_chunks
from capa.bundle.schema import scalar_batch, scalars_schema


def device_batches(rng, device, start, period, block, blocks):
    out = []
    for k in range(blocks):
        t = start + period * (np.arange(block) + k * block)
        out.append((t[0], scalar_batch(t, device, t.astype(float), unit="V")))
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    devices=st.integers(1, 4),
    chunk=st.sampled_from([7, 50, 1000]),
)
def test_merged_output_is_every_row_in_time_order(seed, devices, chunk):
    rng = np.random.default_rng(seed)
    tagged = []
    for d in range(devices):
        tagged += device_batches(
            rng,
            f"dev{d}",
            int(rng.integers(0, 1000)),
            int(rng.integers(1, 50)),
            int(rng.integers(1, 20)),
            int(rng.integers(1, 8)),
        )
    # Arrival order: roughly by time, as the writer receives them, with some jitter.
    tagged.sort(key=lambda tb: tb[0] + int(rng.integers(0, 200)))
    batches = [b for _, b in tagged]
    chunks = list(sorted_chunks(batches, scalars_schema(), chunk))
    merged = pa.concat_tables(chunks) if chunks else None
    total = sum(b.num_rows for b in batches)
    assert merged is not None
    assert merged.num_rows == total
    t = merged.column("t_mono_ns").to_numpy()
    assert (np.diff(t) >= 0).all()
    expected = np.sort(np.concatenate([b.column("t_mono_ns").to_numpy() for b in batches]))
    assert (t == expected).all()
    # Every row keeps its own values (value == time for these test rows).
    assert (merged.column("value").to_numpy() == t).all()


def test_chunks_stay_bounded_for_interleaved_devices():
    # A 1 kS/s block device and a 10 Hz poller, interleaved as they would arrive.
    fast = device_batches(None, "daq", 0, 1_000_000, 100, 200)  # 20 000 rows over 20 s
    slow = [
        (t, scalar_batch(np.array([t]), "oven", [float(t)], unit="degC"))
        for t in range(50_000_000, 20_000_000_000, 100_000_000)
    ]
    arrival = sorted(fast + slow, key=lambda tb: tb[0])
    chunks = list(sorted_chunks([b for _, b in arrival], scalars_schema(), 2_000))
    assert sum(c.num_rows for c in chunks) == 20_000 + len(slow)
    # No chunk much larger than the requested size plus one batch per device.
    assert max(c.num_rows for c in chunks) <= 2_000 + 2 * 100
