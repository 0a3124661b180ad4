"""Property: whatever order batches arrive in, finalize keeps every row and sorts them."""

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capa import ScalarRows
from capa.bundle.finalize import finalize_bundle
from capa.bundle.schema import scalar_batch
from capa.bundle.writer import BundleWriter

batches = st.lists(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["a", "b", "c"]), st.floats(-1e6, 1e6)),
        min_size=0,
        max_size=20,
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=batches)
def test_finalize_sorts_and_keeps_every_row(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("runs")
    writer = BundleWriter.open(root, flush_interval_s=0.05)
    for rows in data:
        t = pa.array([r[0] for r in rows], pa.int64())
        writer.submit(
            ScalarRows(
                scalar_batch(
                    t,
                    pa.array([r[1] for r in rows], pa.string()),
                    pa.array([r[2] for r in rows], pa.float64()),
                    unit=None,
                )
            )
        )
    writer.close("completed", finalize=False)
    result = finalize_bundle(writer.bundle)
    assert result.ok
    table = pq.read_table(writer.bundle / "scalars.parquet")
    times = table.column("t_mono_ns").to_pylist()
    assert times == sorted(times)
    got = Counter(
        zip(
            times,
            table.column("channel").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )
    expected = Counter(row for rows in data for row in rows)
    assert got == expected
