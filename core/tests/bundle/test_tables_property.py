"""Property: the table encoder keeps every row, sorts each row group, and says when the
file as a whole is not in time order."""

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capa.bundle.schema import scalar_batch, scalars_schema
from capa.bundle.tables import ParquetEncoder

batches = st.lists(
    st.lists(st.tuples(st.integers(0, 60), st.sampled_from(["a", "b"])), min_size=0, max_size=12),
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=batches,
    group_rows=st.integers(1, 20),
    window=st.sampled_from([0, 5, 20]),
    compact=st.sampled_from([2, 3, 256]),
)
def test_every_row_kept_each_group_sorted_and_disorder_reported(
    tmp_path_factory, data, group_rows, window, compact
):
    from capa.bundle import encoder as tables

    saved = tables._COMPACT_BATCHES
    tables._COMPACT_BATCHES = compact  # merge small batches often (256 in production)
    try:
        _check(tmp_path_factory, data, group_rows, window)
    finally:
        tables._COMPACT_BATCHES = saved


def _check(tmp_path_factory, data, group_rows, window):
    path = tmp_path_factory.mktemp("enc") / "t.parquet"
    encoder = ParquetEncoder(
        path, scalars_schema(), group_rows=group_rows, window_ns=window, count_channels=True
    )
    for rows in data:
        t = pa.array([r[0] for r in rows], pa.int64())
        names = pa.array([r[1] for r in rows], pa.string())
        encoder.append(scalar_batch(t, names, t.cast(pa.float64())))
    encoder.close()
    file = pq.ParquetFile(path)
    table = file.read()
    times = table.column("t_mono_ns").to_pylist()
    got = Counter(zip(times, table.column("channel").to_pylist(), strict=True))
    assert got == Counter(row for rows in data for row in rows)
    assert encoder.channel_counts == dict(Counter(r[1] for rows in data for r in rows))
    if window:
        for g in range(file.num_row_groups):
            group = file.read_row_group(g).column("t_mono_ns").to_pylist()
            assert group == sorted(group)
    claimed = file.metadata.metadata[b"capa.sorted"] == b"true"
    assert claimed == (times == sorted(times))
    arrival = [r[0] for rows in data for r in rows]
    # Nothing ever arrived later than the window behind the newest, and the buffer never
    # reached its memory bound (8 row groups, written then whatever the window says).
    if (
        window
        and len(arrival) < 8 * group_rows
        and all(t >= max(arrival[: i + 1]) - window for i, t in enumerate(arrival))
    ):
        assert times == sorted(times)
        assert claimed
