"""Min/max decimation per pixel bucket, streaming over a series in chunks.

A plot ``W`` pixels wide cannot show more than one vertical extent per pixel column, so
for each of ``buckets`` equal time slices of ``[t_start, t_end]`` it is enough to keep the
smallest and the largest value (and when they happened). Drawn as a line through those
points in time order, the figure is the same as one drawn through every sample: every
spike survives, which taking every Nth point does not guarantee.

The accumulator holds ``O(buckets)`` numbers whatever the length of the series: feed it
chunks (row groups, time windows) and the whole series is never in memory at once.
While the series is still short (at most ``raw_limit`` points) the points themselves are
kept too, and returned as they are: decimating 600 points into 1600 buckets would only
lose the shape between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Decimated", "MinMaxBuckets"]

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]

_EXACT_LIMIT = 2**62
"""Largest ``span * buckets`` computed in integers (products stay below int64's max)."""


@dataclass(frozen=True)
class Decimated:
    """The points to draw for one channel.

    Attributes:
        t_ns: run-clock times, ascending.
        values: the value at each time.
        points: finite samples seen inside ``[t_start, t_end]``.
        skipped: samples seen but not drawable (null/NaN/infinite, or outside the span).
        decimated: whether ``t_ns``/``values`` are bucket extremes (else every sample).
    """

    t_ns: Int64Array
    values: Float64Array
    points: int
    skipped: int
    decimated: bool


class MinMaxBuckets:
    """Streaming min/max per time bucket over ``[t_start, t_end]`` (nanoseconds).

    Ties are resolved deterministically: a bucket's minimum is the earliest sample holding
    the smallest value, its maximum the latest sample holding the largest one.
    """

    def __init__(self, t_start: int, t_end: int, buckets: int, *, raw_limit: int = 0) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        if t_end < t_start:
            raise ValueError(f"t_end {t_end} is before t_start {t_start}")
        self.t_start = int(t_start)
        self.t_end = int(t_end)
        self.buckets = int(buckets)
        self.raw_limit = int(raw_limit)
        self._min = np.full(buckets, np.inf)
        self._max = np.full(buckets, -np.inf)
        self._t_min = np.zeros(buckets, dtype=np.int64)
        self._t_max = np.zeros(buckets, dtype=np.int64)
        self._raw_t: list[Int64Array] | None = [] if raw_limit > 0 else None
        self._raw_v: list[Float64Array] = []
        self.points = 0
        self.skipped = 0

    def bucket_of(self, t_ns: Int64Array) -> npt.NDArray[np.intp]:
        """The bucket of each time: ``floor((t - t_start) * buckets / span)``.

        Times must lie inside the span; ``t_end`` itself belongs to the last bucket.
        """
        span = self.t_end - self.t_start
        if span == 0:
            return np.zeros(len(t_ns), dtype=np.intp)
        offset = t_ns - self.t_start
        if span * self.buckets < _EXACT_LIMIT:
            index = offset * self.buckets // span  # exact: no product can overflow
        else:
            # A span longer than ~25 days at thousands of buckets: the product would
            # overflow int64, so divide in float64. Its rounding (1e-16 relative) can only
            # move a sample sitting on a bucket edge to the neighbouring pixel.
            frac = offset.astype(np.float64) / float(span)
            index = np.floor(frac * self.buckets).astype(np.int64)
        return np.clip(index, 0, self.buckets - 1).astype(np.intp)

    def add(self, t_ns: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Fold one chunk of samples in (any order; NaN = no value)."""
        t = np.asarray(t_ns, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise ValueError(f"t_ns and values must be 1-D of one length: {t.shape} {v.shape}")
        keep = np.isfinite(v) & (t >= self.t_start) & (t <= self.t_end)
        self.skipped += int(len(t) - np.count_nonzero(keep))
        t, v = t[keep], v[keep]
        if len(t) == 0:
            return
        self.points += len(t)
        if self._raw_t is not None:
            if self.points <= self.raw_limit:
                self._raw_t.append(t)
                self._raw_v.append(v)
            else:  # too many to draw one by one: from now on only the buckets count
                self._raw_t = None
                self._raw_v = []
        self._fold(self.bucket_of(t), t, v)

    def _fold(self, idx: npt.NDArray[np.intp], t: Int64Array, v: Float64Array) -> None:
        if len(idx) > 1 and bool(np.all(idx[1:] >= idx[:-1])):
            lo_v, lo_t, hi_v, hi_t, b = _segments_in_order(idx, t, v)
        else:
            lo_v, lo_t, hi_v, hi_t, b = _segments_sorted(idx, t, v)
        old_lo, old_lo_t = self._min[b], self._t_min[b]
        take = (lo_v < old_lo) | ((lo_v == old_lo) & (lo_t < old_lo_t))
        self._min[b] = np.where(take, lo_v, old_lo)
        self._t_min[b] = np.where(take, lo_t, old_lo_t)
        old_hi, old_hi_t = self._max[b], self._t_max[b]
        take = (hi_v > old_hi) | ((hi_v == old_hi) & (hi_t > old_hi_t))
        self._max[b] = np.where(take, hi_v, old_hi)
        self._t_max[b] = np.where(take, hi_t, old_hi_t)

    def extremes(self) -> tuple[npt.NDArray[np.intp], Float64Array, Float64Array]:
        """Non-empty buckets: their indices, minima and maxima."""
        filled = np.flatnonzero(np.isfinite(self._min))
        return filled, self._min[filled], self._max[filled]

    def result(self) -> Decimated:
        """The points to draw, in time order."""
        if self._raw_t is not None:
            t = np.concatenate(self._raw_t) if self._raw_t else np.zeros(0, np.int64)
            v = np.concatenate(self._raw_v) if self._raw_v else np.zeros(0, np.float64)
            order = np.argsort(t, kind="stable")
            return Decimated(t[order], v[order], self.points, self.skipped, decimated=False)
        filled = np.flatnonzero(np.isfinite(self._min))
        t_lo, t_hi = self._t_min[filled], self._t_max[filled]
        v_lo, v_hi = self._min[filled], self._max[filled]
        # Each bucket gives its minimum and maximum in the order they happened (one point
        # when both are the same sample), so the line drawn through them is faithful.
        first_is_lo = t_lo <= t_hi
        t_a = np.where(first_is_lo, t_lo, t_hi)
        v_a = np.where(first_is_lo, v_lo, v_hi)
        t_b = np.where(first_is_lo, t_hi, t_lo)
        v_b = np.where(first_is_lo, v_hi, v_lo)
        t_out = np.column_stack([t_a, t_b]).ravel()
        v_out = np.column_stack([v_a, v_b]).ravel()
        same = (t_lo == t_hi) & (v_lo == v_hi)
        keep = np.column_stack([np.ones_like(same), ~same]).ravel()
        return Decimated(
            t_out[keep].astype(np.int64),
            v_out[keep].astype(np.float64),
            self.points,
            self.skipped,
            decimated=True,
        )


_Segments = tuple[Float64Array, Int64Array, Float64Array, Int64Array, npt.NDArray[np.intp]]


def _segments_sorted(idx: npt.NDArray[np.intp], t: Int64Array, v: Float64Array) -> _Segments:
    """Per bucket of a chunk in any order: min, its time, max, its time, bucket index."""
    # Sorted by bucket, then value, then time: the first row of each bucket is its
    # minimum (earliest among equal values), the last its maximum (latest).
    order = np.lexsort((t, v, idx))
    idx, t, v = idx[order], t[order], v[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    ends = np.r_[starts[1:], len(idx)] - 1
    return v[starts], t[starts], v[ends], t[ends], idx[starts]


def _segments_in_order(idx: npt.NDArray[np.intp], t: Int64Array, v: Float64Array) -> _Segments:
    """The same for a chunk whose buckets do not decrease (samples in time order).

    Linear time, no sort: the common case (every table is written in time order).
    """
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    lengths = np.diff(np.r_[starts, len(idx)])
    lo_v = np.minimum.reduceat(v, starts)
    hi_v = np.maximum.reduceat(v, starts)
    # Among the samples equal to the bucket's extreme: the earliest (min) / latest (max).
    big = np.iinfo(np.int64).max
    lo_t = np.minimum.reduceat(np.where(v == np.repeat(lo_v, lengths), t, big), starts)
    hi_t = np.maximum.reduceat(np.where(v == np.repeat(hi_v, lengths), t, -big), starts)
    return lo_v, lo_t, hi_v, hi_t, idx[starts]
