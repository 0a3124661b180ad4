"""The report's view of a bundle, read through ``capa.open_bundle`` (core's read API).

Channels are streamed in time windows sized from the manifest's per-channel counts, so
that a window holds at most :data:`WINDOW_ROWS` samples: a 100 M-row channel is read in
~100 pieces, each folded into the plot's min/max buckets and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from capa_report.model import ChannelMeta, EventRow, Integrity, event_row

if TYPE_CHECKING:
    import capa

__all__ = ["WINDOW_ROWS", "BundleData", "open_run"]

WINDOW_ROWS = 1_000_000
"""Samples of one channel read at a time (16 MB of time and value arrays)."""


def open_run(run_id: str, runs_root: Path | None = None) -> BundleData:
    """Open a run by id (under the runs root) or by bundle path.

    Raises:
        capa.BundleError: no such run, or its manifest cannot be read.
    """
    import capa

    return BundleData(capa.open_bundle(run_id, runs_root=runs_root))


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _channel_rows(manifest: dict[str, Any]) -> dict[str, int]:
    """Samples recorded per channel, as the manifest counts them (to size the reads)."""
    counts = _d(manifest.get("counts"))
    tables = [_d(_d(counts.get("scalars")).get("channels"))]
    tables += [_d(_d(device).get("channels")) for device in _d(counts.get("samples")).values()]
    rows: dict[str, int] = {}
    for table in tables:
        for name, n in table.items():
            if isinstance(n, int) and not isinstance(n, bool):
                rows[str(name)] = rows.get(str(name), 0) + n
    return rows


class BundleData:
    """A :class:`capa_report.model.RunData` over an opened bundle."""

    def __init__(self, bundle: capa.Bundle) -> None:
        self.bundle = bundle
        self._channels: list[ChannelMeta] | None = None

    @property
    def bundle_path(self) -> Path:
        """The bundle folder (the report never writes inside it)."""
        return Path(self.bundle.path)

    @property
    def run_id(self) -> str:
        """The run id."""
        return str(self.bundle.run_id)

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` as a dict."""
        return dict(self.bundle.manifest)

    def channels(self) -> Sequence[ChannelMeta]:
        """Every recorded channel, with its unit, plot group and recorded row count."""
        if self._channels is None:
            rows = _channel_rows(self.bundle.manifest)
            self._channels = [
                ChannelMeta(
                    name=info.name,
                    unit=info.unit,
                    kind=info.kind,
                    device=info.device,
                    plot_group=info.plot_group,
                    calibration=info.calibration,
                    # Without the manifest's count, the rows of its table bound it.
                    rows=rows[info.name] if info.name in rows else self._table_rows(info.table),
                )
                for info in self.bundle.channels().values()
            ]
        return self._channels

    def _table_files(self, table: str) -> list[Path]:
        where = self.bundle.path / table
        files = sorted(where.glob("*.parquet")) if where.is_dir() else [where]
        return [f for f in files if f.is_file()]

    def _table_rows(self, table: str) -> int:
        return sum(_footer(f).num_rows for f in self._table_files(table))

    def span(self) -> tuple[int, int] | None:
        """First and last sample time, from the Parquet footers' ``t_mono_ns`` statistics.

        Falls back to the manifest's wall-clock duration (and the events) for a table
        whose row groups carry no statistics.
        """
        tables = {info.table for info in self.bundle.channels().values()}
        lo: int | None = None
        hi: int | None = None
        exact = True
        for table in sorted(tables):
            for path in self._table_files(table):
                meta = _footer(path)
                col = _time_column(meta)
                for i in range(meta.num_row_groups):
                    rg = meta.row_group(i)
                    if rg.num_rows == 0:
                        continue
                    stats = None if col is None else rg.column(col).statistics
                    if stats is None or not stats.has_min_max:
                        exact = False
                        continue
                    lo = int(stats.min) if lo is None else min(lo, int(stats.min))
                    hi = int(stats.max) if hi is None else max(hi, int(stats.max))
        if not exact:
            lo, hi = self._estimated_span(lo, hi)
        return None if lo is None or hi is None else (lo, hi)

    def _estimated_span(self, lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
        from datetime import datetime

        m = self.bundle.manifest
        try:
            started = datetime.fromisoformat(str(m.get("started_utc")))
            ended = datetime.fromisoformat(str(m.get("ended_utc")))
        except ValueError:
            return lo, hi
        zero_to_end = round((ended - started).total_seconds() * 1e9)
        lo = 0 if lo is None else min(lo, 0)
        hi = zero_to_end if hi is None else max(hi, zero_to_end)
        return lo, hi

    def chunks(
        self, channel: ChannelMeta, start_ns: int, end_ns: int
    ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """The channel's samples in ``[start_ns, end_ns]``, one time window at a time.

        Windows are equal slices of time, as many as the channel's row count needs for
        :data:`WINDOW_ROWS` per window at an even rate; a channel recorded in bursts has
        fuller windows where its bursts are (memory follows the densest window).
        """
        windows = max(1, math.ceil((channel.rows or 0) / WINDOW_ROWS))
        # Window bounds in whole microseconds (timedelta's resolution), so that the end of
        # one window is exactly the start of the next: no sample is read twice or missed.
        lo_us = start_ns // 1000
        hi_us = end_ns // 1000 + 1
        edges = [lo_us + (hi_us - lo_us) * k // windows for k in range(windows + 1)]
        for k in range(windows):
            lo = timedelta(microseconds=edges[k])
            hi = timedelta(microseconds=edges[k + 1])
            t, v = self.bundle.series(channel.name, start=lo, end=hi)
            if len(t):
                yield t, v

    def events(self) -> Sequence[EventRow]:
        """Every event, in time order."""
        return [event_row(row) for row in self.bundle.events().to_pylist()]

    def verify(self) -> Integrity:
        """Re-hash the bundle against its ``manifest.sha256``."""
        result = self.bundle.verify()
        return Integrity(str(result.status.value), result.describe(), result.checked)


def _footer(path: Path) -> Any:
    """A Parquet file's footer; an unreadable file is a :class:`capa.BundleError`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import capa

    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise capa.BundleError(f"{path}: not a readable Parquet file ({exc})") from exc


def _time_column(meta: Any) -> int | None:
    for j in range(meta.num_columns):
        if meta.schema.column(j).path == "t_mono_ns":
            return j
    return None
