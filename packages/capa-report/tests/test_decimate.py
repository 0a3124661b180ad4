"""Min/max decimation against a brute-force reference written with plain Python ints."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capa_report.decimate import MinMaxBuckets


def reference(t, v, t_start, t_end, buckets):
    """Per bucket: (min, t of min, max, t of max), one sample at a time, no numpy."""
    span = t_end - t_start
    out: dict[int, list] = {}
    for t_raw, v_raw in zip(t, v, strict=True):
        ti, vi = int(t_raw), float(v_raw)
        if not math.isfinite(vi) or ti < t_start or ti > t_end:
            continue
        b = 0 if span == 0 else min(buckets - 1, (ti - t_start) * buckets // span)
        cur = out.get(b)
        if cur is None:
            out[b] = [vi, ti, vi, ti]
            continue
        if vi < cur[0] or (vi == cur[0] and ti < cur[1]):
            cur[0], cur[1] = vi, ti
        if vi > cur[2] or (vi == cur[2] and ti > cur[3]):
            cur[2], cur[3] = vi, ti
    return out


values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf")]),  # ties, gaps
)


@st.composite
def series(draw):
    n = draw(st.integers(0, 300))
    t_start = draw(st.integers(-(10**12), 10**12))
    span = draw(st.integers(0, 10**13))
    # Some samples fall outside the span on purpose (they must be counted, not drawn).
    t = draw(st.lists(st.integers(t_start - 10**6, t_start + span + 10**6), min_size=n, max_size=n))
    v = draw(st.lists(values, min_size=n, max_size=n))
    buckets = draw(st.integers(1, 64))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    return np.array(t, np.int64), np.array(v, np.float64), t_start, t_start + span, buckets, cuts


@settings(max_examples=300, deadline=None)
@given(series(), st.booleans())
def test_buckets_match_brute_force_whatever_the_chunking(case, in_time_order):
    t, v, t_start, t_end, buckets, cuts = case
    if in_time_order:  # the linear path (sorted chunks) and the sorting path both
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    acc = MinMaxBuckets(t_start, t_end, buckets)
    bounds = [0, *cuts, len(t)]
    for a, b in itertools.pairwise(bounds):  # chunks in any sizes, even empty
        acc.add(t[a:b], v[a:b])
    expected = reference(t, v, t_start, t_end, buckets)
    filled, lo, hi = acc.extremes()
    assert sorted(expected) == filled.tolist()
    assert lo.tolist() == [expected[b][0] for b in sorted(expected)]
    assert hi.tolist() == [expected[b][2] for b in sorted(expected)]
    drawable = sum(
        1 for ti, vi in zip(t, v, strict=True) if math.isfinite(vi) and t_start <= ti <= t_end
    )
    assert acc.points == drawable
    assert acc.points + acc.skipped == len(t)

    out = acc.result()
    assert out.decimated
    assert np.all(np.diff(out.t_ns) >= 0), "points must come out in time order"
    # Every bucket's extremes appear at the times they happened, and nothing else does.
    want = set()
    for b in sorted(expected):
        mn, t_mn, mx, t_mx = expected[b]
        want |= {(t_mn, mn), (t_mx, mx)}
    assert set(zip(out.t_ns.tolist(), out.values.tolist(), strict=True)) == want
    # Once per bucket when its minimum and maximum are the same sample, else twice.
    assert len(out.t_ns) == sum(1 if (e[1], e[0]) == (e[3], e[2]) else 2 for e in expected.values())


@settings(max_examples=100, deadline=None)
@given(series())
def test_short_series_come_back_whole(case):
    t, v, t_start, t_end, buckets, _ = case
    acc = MinMaxBuckets(t_start, t_end, buckets, raw_limit=10_000)
    acc.add(t, v)
    out = acc.result()
    keep = np.isfinite(v) & (t >= t_start) & (t <= t_end)
    order = np.argsort(t[keep], kind="stable")
    assert not out.decimated
    assert out.t_ns.tolist() == t[keep][order].tolist()
    assert out.values.tolist() == v[keep][order].tolist()


def test_a_spike_survives_that_every_nth_point_would_lose():
    n = 1_000_000
    t = np.arange(n, dtype=np.int64) * 1_000  # 1 kS/s for 1000 s
    v = np.sin(np.arange(n) / 5000.0)
    v[123_457] = 50.0  # one sample
    acc = MinMaxBuckets(0, int(t[-1]), 1000, raw_limit=2000)
    for a in range(0, n, 65_536):
        acc.add(t[a : a + 65_536], v[a : a + 65_536])
    out = acc.result()
    assert out.decimated
    assert out.points == n
    assert len(out.t_ns) <= 2000
    assert out.values.max() == 50.0
    assert int(out.t_ns[out.values.argmax()]) == int(t[123_457])
    assert v[::1000].max() < 1.01  # what taking every 1000th point would have shown


def test_span_beyond_int64_products_still_buckets_every_sample():
    # 300 days in ns at 4000 buckets: span * buckets > 2**62, the float path.
    span = 300 * 86_400 * 10**9
    t = np.linspace(0, span, 100_001).astype(np.int64)
    v = np.arange(len(t), dtype=np.float64)
    acc = MinMaxBuckets(0, span, 4000)
    acc.add(t, v)
    filled, _, _ = acc.extremes()
    assert acc.points == len(t)
    assert len(filled) == 4000
    exact = [min(3999, int(x) * 4000 // span) for x in t]
    got = acc.bucket_of(t).tolist()
    assert max(abs(a - b) for a, b in zip(exact, got, strict=True)) <= 1


def test_rejects_bad_shapes():
    acc = MinMaxBuckets(0, 10, 4)
    with pytest.raises(ValueError, match="one length"):
        acc.add([1, 2], [1.0])
    with pytest.raises(ValueError, match="buckets"):
        MinMaxBuckets(0, 10, 0)


def test_a_gap_in_the_recording_breaks_the_line():
    from capa_report.figures import with_gaps

    t = np.r_[np.arange(0, 100), np.arange(400, 500)].astype(np.int64) * 10**9  # 300 s hole
    v = np.ones(len(t))
    gt, gv = with_gaps(t, v, bucket_ns=1e9)
    assert len(gt) == len(t) + 1
    assert np.isnan(gv).sum() == 1
    hole = int(np.flatnonzero(np.isnan(gv))[0])
    assert gt[hole - 1] == 99e9
    assert gt[hole + 1] == 400e9
    # Regular sampling, jitter included, is never broken.
    jitter = np.arange(1000) * 10**8 + np.random.default_rng(1).integers(0, 10**7, 1000)
    gt, gv = with_gaps(jitter, np.ones(1000), bucket_ns=1e8)
    assert not np.isnan(gv).any()
