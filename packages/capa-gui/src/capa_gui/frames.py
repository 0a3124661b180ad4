"""Turning recorded batches into display frames: per-channel min/max decimation.

A frame is what the page draws next: for each channel a few points (at most
``2 * buckets`` per frame, the minimum and the maximum of each time bucket, so a spike
in a 10 kS/s stream stays visible), the latest value, unit and status, and the events
since the previous frame. A short history per channel (bounded) lets a page that
connects mid-run draw what came before.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import capa
from capa_gui.bridge import EventView

__all__ = ["FrameBuilder", "decimate_minmax"]


def decimate_minmax(t: Any, v: Any, buckets: int) -> tuple[list[float], list[float]]:
    """At most ``2 * buckets`` points keeping each bucket's minimum and maximum, in time order.

    ``t`` and ``v`` are equal-length arrays (``t`` ascending). Short inputs come back whole.
    NaN values are dropped first.
    """
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    keep = ~np.isnan(v)
    if not keep.all():
        t, v = t[keep], v[keep]
    n = len(t)
    if n <= 2 * buckets:
        return t.tolist(), v.tolist()
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    out_t: list[float] = []
    out_v: list[float] = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        seg = v[a:b]
        i_min = a + int(np.argmin(seg))
        i_max = a + int(np.argmax(seg))
        for i in sorted({i_min, i_max}):
            out_t.append(float(t[i]))
            out_v.append(float(v[i]))
    return out_t, out_v


@dataclass
class _Channel:
    history: deque[tuple[float, float]]
    t: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    latest: tuple[float, float, str] | None = None


class FrameBuilder:
    """Collects bridge items and emits display frames.

    Args:
        channels: channel names, in display order.
        buckets: min/max buckets per channel per frame.
        history: decimated points kept per channel for pages that connect later.
        events_kept: recent events kept for the same purpose.
    """

    def __init__(
        self,
        channels: Iterable[str],
        *,
        buckets: int = 8,
        history: int = 3000,
        events_kept: int = 300,
    ) -> None:
        self.buckets = buckets
        self._channels = {name: _Channel(deque(maxlen=history)) for name in channels}
        self._events: deque[dict[str, Any]] = deque(maxlen=events_kept)
        self._new_events: list[dict[str, Any]] = []
        self.rows_seen = 0
        self.event_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ input
    def add(self, items: Iterable[Any]) -> None:
        """Fold bridge items (ScalarRows, SampleRows, EventRecord, EventView) into a frame."""
        pending: dict[str, tuple[list[Any], list[Any], str]] = {}
        for item in items:
            if isinstance(item, capa.ScalarRows | capa.SampleRows):
                for name, t, v, status in _channel_columns(item.batch):
                    if not len(t):
                        continue  # a wide batch in which this channel had no value
                    ts, vs, _ = pending.setdefault(name, ([], [], status))
                    ts.append(t)
                    vs.append(v)
                    pending[name] = (ts, vs, status)
            elif isinstance(item, capa.EventRecord):
                self._event(
                    EventView(
                        kind=item.kind,
                        message=item.message,
                        severity=str(item.severity),
                        source=item.source,
                        t_mono_ns=item.t_mono_ns,
                        t_utc=item.t_utc,
                        metadata=dict(item.metadata or {}),
                    )
                )
            elif isinstance(item, EventView):
                self._event(item)
        for name, (ts, vs, status) in pending.items():
            t = np.concatenate(ts) / 1e9
            v = np.concatenate(vs)
            self.rows_seen += len(t)
            chan = self._channels.get(name)
            if chan is None:
                continue
            dt, dv = decimate_minmax(t, v, self.buckets)
            chan.t.extend(dt)
            chan.v.extend(dv)
            chan.history.extend(zip(dt, dv, strict=True))
            if len(t):
                chan.latest = (float(t[-1]), float(v[-1]), status)

    def _event(self, event: EventView) -> None:
        data = event.to_json()
        self._events.append(data)
        self._new_events.append(data)
        self.event_counts[event.kind] = self.event_counts.get(event.kind, 0) + 1

    # ------------------------------------------------------------------ output
    def frame(self) -> dict[str, Any]:
        """The points and events gathered since the previous frame (then forgets them)."""
        series: dict[str, list[list[float]]] = {}
        latest: dict[str, list[Any]] = {}
        for name, chan in self._channels.items():
            if chan.t:
                series[name] = [chan.t, chan.v]
                chan.t, chan.v = [], []
            if chan.latest is not None:
                latest[name] = list(chan.latest)
        events, self._new_events = self._new_events, []
        return {"series": series, "latest": latest, "events": events}

    def snapshot(self) -> dict[str, Any]:
        """Everything still held (history and recent events), for a page that just connected."""
        series: dict[str, list[list[float]]] = {}
        latest: dict[str, list[Any]] = {}
        for name, chan in self._channels.items():
            if chan.history:
                ts, vs = zip(*chan.history, strict=True)
                series[name] = [list(ts), list(vs)]
            if chan.latest is not None:
                latest[name] = list(chan.latest)
        return {"series": series, "latest": latest, "events": list(self._events)}


def _channel_columns(batch: Any) -> list[tuple[str, Any, Any, str]]:
    """``(channel, t_ns, values, last status)`` per channel of one batch.

    Accepts the long ``scalars`` layout (``t_mono_ns, channel, value, status``) and the
    wide ``samples/<device>`` one (``t_mono_ns``, then per channel ``<ch>``, optionally
    ``<ch>.raw``, and ``<ch>.status``); rows where a wide channel is null are left out.
    """
    names = batch.schema.names
    t = batch.column("t_mono_ns").to_numpy(zero_copy_only=False)
    if "channel" not in names:  # wide: one column per channel
        return [_wide_channel(batch, name, t) for name in wide_value_columns(batch.schema)]
    chan = batch.column("channel")
    values = batch.column("value").to_numpy(zero_copy_only=False)
    status_col = batch.column("status") if "status" in names else None
    if hasattr(chan, "indices"):
        codes = chan.indices.to_numpy(zero_copy_only=False)
        dictionary = chan.dictionary.to_pylist()
    else:
        labels = chan.to_pylist()
        dictionary = sorted(set(labels))
        codes = np.array([dictionary.index(x) for x in labels])
    out = []
    for code in np.unique(codes):
        idx = np.nonzero(codes == code)[0]
        status = "ok"
        if status_col is not None and len(idx):
            status = str(status_col[int(idx[-1])].as_py())
        out.append((str(dictionary[int(code)]), t[idx], values[idx], status))
    return out


def wide_value_columns(schema: Any) -> list[str]:
    """The channel value columns of a wide schema (not ``t_mono_ns``, ``.raw``, ``.status``)."""
    out = []
    for column in schema:
        role = (column.metadata or {}).get(b"capa.role")
        if column.name == "t_mono_ns" or role in (b"raw", b"status"):
            continue
        if role is None and column.name.endswith((".raw", ".status")):
            continue  # channel names cannot contain ".": a suffix column without metadata
        out.append(column.name)
    return out


def _wide_channel(batch: Any, name: str, t: Any) -> tuple[str, Any, Any, str]:
    column = batch.column(name)
    values = column.to_numpy(zero_copy_only=False)
    status_name = name + ".status"
    status_col = batch.column(status_name) if status_name in batch.schema.names else None
    if column.null_count:
        keep = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        idx = np.nonzero(keep)[0]
        t, values = t[idx], values[idx]
        last = int(idx[-1]) if len(idx) else None
    else:
        last = len(column) - 1 if len(column) else None
    status = "ok"
    if status_col is not None and last is not None:
        status = str(status_col[last].as_py() or "ok")
    return name, t, values, status


def channel_meta(plan: Any) -> list[dict[str, Any]]:
    """Name, unit, kind, device and plot group of every channel, in hardware-file order.

    Derived channels follow the measured ones (device ``derived``, their expression as
    the field).
    """
    out = []
    for ch in plan.channels:
        mapping: Mapping[str, Any] | Any = ch.mapping
        group = getattr(mapping, "plot_group", None) or ch.kind or ch.unit
        out.append(
            {
                "name": ch.name,
                "unit": ch.unit,
                "kind": ch.kind,
                "device": ch.device,
                "field": ch.field,
                "group": group,
                "writable": bool(ch.writable),
            }
        )
    for d in getattr(plan, "derived", ()):
        out.append(
            {
                "name": d.name,
                "unit": d.unit,
                "kind": d.kind,
                "device": "derived",
                "field": d.expression,
                "group": d.plot_group or d.kind or d.unit,
                "writable": False,
            }
        )
    return out
