"""The tables a :class:`~capa.read.Bundle` returns: pyarrow first, other libraries on demand.

A :class:`Frame` holds a ``pyarrow.Table`` (``.arrow``) and converts it to pandas, polars
or xarray only when asked; those libraries are imported inside the method, so capa never
needs them, and a missing one is one clear :class:`~capa.errors.MissingDependencyError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from capa.errors import MissingDependencyError
from capa.read.meta import ChannelInfo
from capa.read.scan import TIME, ScanStats

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Frame", "align_wide", "channel_field", "long_schema", "require"]

FrameKind = Literal["long", "wide", "table"]


def require(module: str, feature: str, extra: str | None = None) -> Any:
    """Import ``module`` or raise one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.partition(".")[0]
        hint = f"pip install 'capa[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(
            f"{feature} needs the {top} library, which is not installed ({hint})"
        ) from None


def long_schema() -> pa.Schema:
    """Schema of long samples as the reader returns them (scalars' columns)."""
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            pa.field(TIME, pa.int64(), nullable=False),
            pa.field("channel", text, nullable=False),
            pa.field("value", pa.float64()),
            pa.field("raw_value", pa.float64()),
            pa.field("unit", text),
            pa.field("status", text),
            pa.field("source_field", pa.string()),
        ]
    )


def channel_field(info: ChannelInfo) -> pa.Field:
    """A float64 field named after the channel, carrying its facts as ``capa.*`` metadata."""
    import pyarrow as pa

    meta = {
        "capa.channel": info.name,
        "capa.role": "value",
        "capa.unit": info.unit,
        "capa.raw_unit": info.raw_unit,
        "capa.kind": info.kind,
        "capa.device": info.device,
        "capa.field": info.field,
        "capa.calibration": info.calibration,
        "capa.plot_group": info.plot_group,
    }
    return pa.field(info.name, pa.float64(), metadata=meta)


def align_wide(pieces: Sequence[pa.Table], fields: Sequence[pa.Field]) -> pa.Table:
    """Outer-join tables on ``t_mono_ns``: one row per distinct time, in time order.

    Each piece has ``t_mono_ns`` and some of ``fields``' columns; a channel is null at a
    time where its table has no row. A time that occurs twice within one piece takes
    that piece's first row there.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    filled = [p for p in pieces if p.num_rows]
    if len(filled) == 1 and _strictly_increasing(filled[0].column(TIME)):
        # One table already in time order (a single device): nothing to join. This
        # keeps a whole-run read of a big wide table at the size of its columns.
        only = filled[0]
        arrays = [only.column(TIME)]
        for f in fields:
            col = only.column(f.name) if f.name in only.column_names else None
            arrays.append(pa.nulls(only.num_rows, f.type) if col is None else col.cast(f.type))
        schema = pa.schema([pa.field(TIME, pa.int64(), nullable=False), *fields])
        return pa.Table.from_arrays(arrays, schema=schema)
    times = [p.column(TIME) for p in filled]
    if times:
        every = pa.chunked_array([c for t in times for c in t.chunks], type=pa.int64())
        axis = pc.unique(every)
        axis = axis.take(pc.sort_indices(axis))
    else:
        axis = pa.array([], type=pa.int64())
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for piece in pieces:
        if not piece.num_rows:
            continue
        index = pc.index_in(axis, value_set=piece.column(TIME).combine_chunks())
        for name in piece.column_names:
            if name != TIME and name not in columns:
                columns[name] = piece.column(name).combine_chunks().take(index)
    arrays = [axis]
    for f in fields:
        col = columns.get(f.name)
        arrays.append(pa.nulls(len(axis), f.type) if col is None else col.cast(f.type))
    schema = pa.schema([pa.field(TIME, pa.int64(), nullable=False), *fields])
    return pa.Table.from_arrays(arrays, schema=schema)


def _strictly_increasing(times: pa.ChunkedArray) -> bool:
    import numpy as np

    previous: int | None = None
    for chunk in times.chunks:
        t = chunk.to_numpy()
        if not t.size:
            continue
        if previous is not None and t[0] <= previous:
            return False
        if t.size > 1 and not bool(np.all(t[1:] > t[:-1])):
            return False
        previous = int(t[-1])
    return True


class Frame:
    """A table read from a bundle.

    Attributes:
        arrow: the data as a ``pyarrow.Table``.
        kind: ``long`` samples (one row per sample), ``wide`` samples (one row per time,
            one column per channel) or ``table`` (events, device records, frames).
        channels: facts of the channels in it (units, kind, ...), for samples.
        utc_at_zero: absolute time of ``t_mono_ns == 0`` when the bundle records it.
        stats: files and row groups the read touched (for samples).
    """

    def __init__(
        self,
        table: pa.Table,
        *,
        kind: FrameKind = "table",
        channels: Mapping[str, ChannelInfo] | None = None,
        utc_at_zero: datetime | None = None,
        stats: ScanStats | None = None,
    ) -> None:
        self.arrow = table
        self.kind = kind
        self.channels: dict[str, ChannelInfo] = dict(channels or {})
        self.utc_at_zero = utc_at_zero
        self.stats = stats or ScanStats()

    def __len__(self) -> int:
        return int(self.arrow.num_rows)

    def __repr__(self) -> str:
        return (
            f"<capa Frame {self.kind}: {self.arrow.num_rows} rows x "
            f"{self.arrow.num_columns} columns>"
        )

    @property
    def column_names(self) -> list[str]:
        """Column names of the table."""
        return list(self.arrow.column_names)

    def units(self) -> dict[str, str]:
        """Channel -> unit of its calibrated values."""
        return {name: info.unit for name, info in self.channels.items()}

    def to_pylist(self) -> list[dict[str, Any]]:
        """Rows as dicts (small tables: events, a short window)."""
        return list(self.arrow.to_pylist())

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` (needs pandas); units in ``df.attrs['units']``."""
        require("pandas", "to_pandas()")
        df = self.arrow.to_pandas()
        if self.channels:
            df.attrs["units"] = self.units()
        if self.utc_at_zero is not None:
            df.attrs["utc_at_zero"] = self.utc_at_zero.isoformat()
        return df

    def to_polars(self) -> Any:
        """A ``polars.DataFrame`` (needs polars)."""
        polars = require("polars", "to_polars()")
        return polars.from_arrow(self.arrow)

    def to_wide(self) -> Frame:
        """The same samples, one row per time and one column per channel (outer join)."""
        if self.kind != "long":
            return self
        from capa.read.layout import long_to_wide

        table = long_to_wide(self.arrow, [self.channels[c] for c in self._channel_order()])
        return Frame(
            table,
            kind="wide",
            channels=self.channels,
            utc_at_zero=self.utc_at_zero,
            stats=self.stats,
        )

    def _channel_order(self) -> list[str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.arrow.num_rows:
            return []
        # cast first: chunks of a dictionary column may carry different dictionaries
        names = pc.unique(self.arrow.column("channel").cast(pa.string()))
        present = set(names.to_pylist())
        return [c for c in self.channels if c in present]

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` (needs xarray); samples are indexed by ``t_mono_ns``.

        Every channel becomes a variable with attributes ``units``, ``raw_units``,
        ``kind``, ``device``, ``field``, ``calibration`` and ``plot_group``; long samples
        are outer-joined to wide first. ``t_s`` (seconds of run time) and, when the bundle
        has a clock anchor, ``t_utc`` are extra coordinates.
        """
        xr = require("xarray", "to_xarray()", extra="netcdf")
        if self.kind == "table":
            return xr.Dataset.from_dataframe(self.to_pandas())
        wide = self.to_wide() if self.kind == "long" else self
        import numpy as np

        t = wide.arrow.column(TIME).to_numpy()
        coords: dict[str, Any] = {
            TIME: (TIME, t, {"long_name": "run-clock time", "units": "ns"}),
            "t_s": (TIME, t / 1e9, {"long_name": "seconds since run start", "units": "s"}),
        }
        if wide.utc_at_zero is not None:
            zero = np.datetime64(wide.utc_at_zero.replace(tzinfo=None), "ns")
            coords["t_utc"] = (TIME, zero + t.astype("timedelta64[ns]"), {"timezone": "UTC"})
        data_vars: dict[str, Any] = {}
        for name in wide.arrow.column_names:
            if name == TIME:
                continue
            values = wide.arrow.column(name).to_numpy(zero_copy_only=False).astype("float64")
            info = wide.channels.get(name)
            attrs = {} if info is None else _attrs(info)
            data_vars[name] = (TIME, values, attrs)
        ds = xr.Dataset(data_vars, coords=coords)
        if wide.utc_at_zero is not None:
            ds.attrs["utc_at_zero"] = wide.utc_at_zero.isoformat()
        return ds


def _attrs(info: ChannelInfo) -> dict[str, str]:
    return {
        "units": info.unit,
        "raw_units": info.raw_unit,
        "kind": info.kind,
        "device": info.device,
        "field": info.field,
        "calibration": info.calibration,
        "plot_group": info.plot_group,
    }
