"""``capa export``: a bundle's samples as CSV, one wide Parquet file, or NetCDF.

All three are wide (one row per time, one column per channel, devices outer-joined on
``t_mono_ns``; a channel is empty where its device did not sample) and written as a
stream: the run is cut into windows at the row-group boundaries of its tables and each
window is read, joined and appended before the next is read, so memory does not grow with
the run's length. Units and the channels' other facts go with the data:

- CSV: a sidecar ``<file>.json`` (run id, clock anchor, every column's unit and facts);
- Parquet: ``capa.*`` field metadata per column (as in the bundle) and file metadata
  ``capa.utc_at_zero``, ``capa.run_id``, ``capa.channels``;
- NetCDF (via h5netcdf, ``capa[netcdf]``): CF-style variable attributes ``units``,
  ``long_name`` and ``capa_*``; ``time`` decodes to absolute UTC.

Files appear complete or not at all: each is written beside its final name and renamed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from capa.errors import BundleError
from capa.read.frame import require
from capa.read.meta import ChannelInfo
from capa.read.scan import TIME, RowGroupCache, ScanStats

if TYPE_CHECKING:
    import pyarrow as pa

    from capa.read.bundle import Bundle
    from capa.read.samples import SampleSource

__all__ = ["FORMATS", "ExportResult", "default_name", "export_bundle", "windows"]

FORMATS: Final = ("csv", "parquet-wide", "netcdf")
_SUFFIX: Final = {"csv": ".csv", "parquet-wide": ".wide.parquet", "netcdf": ".nc"}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    rows: int
    channels: list[str]
    sidecar: Path | None = None
    stats: ScanStats | None = None


def default_name(run_id: str, fmt: str) -> str:
    """``<run_id>.csv``, ``<run_id>.wide.parquet`` or ``<run_id>.nc``."""
    return f"{run_id}{_SUFFIX[fmt]}"


def windows(
    source: SampleSource, infos: Sequence[ChannelInfo], lo: int | None, hi: int | None
) -> list[tuple[int | None, int | None]]:
    """Consecutive ``[lo, hi)`` windows cut at the tables' row-group starts.

    Together they cover ``[lo, hi)`` exactly (the first and last are open-ended when
    ``lo`` / ``hi`` are); each holds about one row group of the densest table.
    """
    import pyarrow.parquet as pq

    from capa.read.scan import time_column_index

    starts: set[int] = set()
    for path in source.files(infos):
        meta = pq.ParquetFile(path).metadata
        col = time_column_index(meta)
        if col is None:
            continue
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is not None and stats.has_min_max:
                starts.add(int(stats.min))
    edges = sorted(t for t in starts if (lo is None or t > lo) and (hi is None or t < hi))
    bounds: list[int | None] = [lo, *edges, hi]
    return list(itertools.pairwise(bounds))


def _wide_windows(
    bundle: Bundle, infos: Sequence[ChannelInfo], lo: int | None, hi: int | None, stats: ScanStats
) -> Iterator[pa.Table]:
    import pyarrow as pa

    source = bundle.sample_source()
    source.cache = RowGroupCache(per_file=2)
    zero = bundle.utc_at_zero
    for a, b in windows(source, infos, lo, hi):
        table = source.wide(infos, a, b, stats)
        if not table.num_rows:
            continue
        t = table.column(TIME)
        seconds = pa.array(t.to_numpy() / 1e9, type=pa.float64())
        table = table.add_column(1, pa.field("t_s", pa.float64()), seconds)
        if zero is not None:
            utc = pa.array(bundle.t_utc(t.to_numpy()), type=pa.timestamp("ns"))
            table = table.add_column(
                2,
                pa.field("t_utc", pa.timestamp("ns", tz="UTC")),
                utc.cast(pa.timestamp("ns", tz="UTC")),
            )
        yield table


def _time_columns(bundle: Bundle) -> dict[str, dict[str, str]]:
    cols = {
        TIME: {"unit": "ns", "description": "run-clock nanoseconds since the run started"},
        "t_s": {"unit": "s", "description": "seconds since the run started"},
    }
    if bundle.utc_at_zero is not None:
        cols["t_utc"] = {
            "unit": "UTC",
            "description": "absolute time: utc_at_zero + t_mono_ns (see clock.method)",
        }
    return cols


def describe(bundle: Bundle, infos: Sequence[ChannelInfo], fmt: str) -> dict[str, Any]:
    """The export's metadata: run, clock anchor, every column's unit and facts."""
    return {
        "run_id": bundle.run_id,
        "format": fmt,
        "bundle_schema_version": bundle.schema_version,
        "clock": bundle.clock,
        "columns": {
            **_time_columns(bundle),
            **{i.name: {k: v for k, v in i.as_dict().items() if k != "name"} for i in infos},
        },
    }


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it only if the block succeeds."""
    temp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        yield temp
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def export_bundle(
    bundle: Bundle,
    fmt: str,
    out: Path,
    *,
    channels: Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
) -> ExportResult:
    """Write the samples of ``bundle`` to ``out`` in ``fmt`` (see the module docstring).

    Raises:
        BundleError: unknown format or channel, nothing to export.
        MissingDependencyError: NetCDF without h5netcdf installed (``capa[netcdf]``).
    """
    if fmt not in FORMATS:
        raise BundleError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "netcdf":  # before anything is read or created
        require("h5netcdf", "capa export --format netcdf", extra="netcdf")
        require("h5py", "capa export --format netcdf", extra="netcdf")
    infos = bundle.select_channels(None if channels is None else list(channels))
    if not infos:
        raise BundleError(f"run {bundle.run_id} has no channels to export")
    lo, hi = bundle.to_ns(start), bundle.to_ns(end)
    stats = ScanStats()
    pieces = _wide_windows(bundle, infos, lo, hi, stats)
    names = [i.name for i in infos]
    sidecar = None
    with _staged(out) as temp:
        if fmt == "csv":
            rows = _write_csv(temp, pieces, bundle, infos)
        elif fmt == "parquet-wide":
            rows = _write_parquet(temp, pieces, bundle, infos)
        else:
            rows = _write_netcdf(temp, pieces, bundle, infos)
    if fmt == "csv":
        sidecar = out.with_name(out.name + ".json")
        text = json.dumps(describe(bundle, infos, fmt), indent=2, ensure_ascii=False) + "\n"
        with _staged(sidecar) as temp:
            temp.write_text(text, encoding="utf-8")
    return ExportResult(out, rows, names, sidecar, stats)


def _empty_wide(bundle: Bundle, infos: Sequence[ChannelInfo]) -> pa.Table:
    import pyarrow as pa

    from capa.read.frame import channel_field

    fields = [pa.field(TIME, pa.int64(), nullable=False), pa.field("t_s", pa.float64())]
    if bundle.utc_at_zero is not None:
        fields.append(pa.field("t_utc", pa.timestamp("ns", tz="UTC")))
    return _empty_table(pa.schema([*fields, *(channel_field(i) for i in infos)]))


def _write_csv(
    path: Path, pieces: Iterable[pa.Table], bundle: Bundle, infos: Sequence[ChannelInfo]
) -> int:
    import pyarrow.csv as pacsv

    schema = _empty_wide(bundle, infos).schema
    rows = 0
    with pacsv.CSVWriter(path, schema) as writer:
        for piece in pieces:
            writer.write_table(piece.cast(schema))
            rows += piece.num_rows
    return rows


def _write_parquet(
    path: Path, pieces: Iterable[pa.Table], bundle: Bundle, infos: Sequence[ChannelInfo]
) -> int:
    import pyarrow.parquet as pq

    meta = {
        "capa.table": "wide_export",
        "capa.run_id": bundle.run_id,
        "capa.bundle_schema_version": str(bundle.schema_version),
        "capa.utc_at_zero": str(bundle.clock.get("utc_at_zero") or ""),
        "capa.clock_method": str(bundle.clock.get("method") or ""),
        "capa.channels": json.dumps(
            {i.name: {k: v for k, v in i.as_dict().items() if k != "name"} for i in infos}
        ),
    }
    schema = _empty_wide(bundle, infos).schema.with_metadata(meta)
    rows = 0
    from capa.bundle.encoder import dictionary_columns

    use_dictionary = dictionary_columns(schema)  # the bundle writer's choice, same reason
    with pq.ParquetWriter(
        path, schema, compression="zstd", use_dictionary=use_dictionary
    ) as writer:
        for piece in pieces:
            writer.write_table(piece.cast(schema))
            rows += piece.num_rows
    return rows


def _write_netcdf(
    path: Path, pieces: Iterable[pa.Table], bundle: Bundle, infos: Sequence[ChannelInfo]
) -> int:
    import numpy as np

    h5netcdf = require("h5netcdf", "capa export --format netcdf", extra="netcdf")
    zero = bundle.utc_at_zero
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"time": None}
        f.attrs["Conventions"] = "CF-1.8"
        f.attrs["title"] = f"capa run {bundle.run_id}"
        f.attrs["run_id"] = bundle.run_id
        f.attrs["bundle_schema_version"] = bundle.schema_version
        f.attrs["clock_method"] = str(bundle.clock.get("method") or "")
        if zero is not None:
            f.attrs["utc_at_zero"] = zero.isoformat()
        mono = f.create_variable(TIME, ("time",), "i8")
        mono.attrs["units"] = "ns"
        mono.attrs["long_name"] = "run-clock nanoseconds since the run started"
        if zero is not None:
            # CF time coordinate: decodes to absolute UTC in xarray, ncview, Panoply.
            time = f.create_variable("time", ("time",), "i8")
            time.attrs["standard_name"] = "time"
            time.attrs["units"] = f"nanoseconds since {zero:%Y-%m-%d %H:%M:%S.%f}"
            time.attrs["calendar"] = "proleptic_gregorian"
        values = {}
        for info in infos:
            var = f.create_variable(info.name, ("time",), "f8", fillvalue=np.nan)
            var.attrs["units"] = info.unit
            var.attrs["coordinates"] = TIME  # CF auxiliary coordinate: the run clock
            var.attrs["long_name"] = f"{info.name} ({info.kind})" if info.kind else info.name
            for key in ("raw_unit", "kind", "device", "field", "calibration", "plot_group"):
                var.attrs[f"capa_{key}"] = getattr(info, key)
            values[info.name] = var
        rows = 0
        for piece in pieces:
            n = piece.num_rows
            f.resize_dimension("time", rows + n)
            t = piece.column(TIME).to_numpy()
            mono[rows : rows + n] = t
            if zero is not None:
                f.variables["time"][rows : rows + n] = t
            for name, var in values.items():
                var[rows : rows + n] = piece.column(name).to_numpy(zero_copy_only=False)
            rows += n
    return rows


def _empty_table(schema: pa.Schema) -> pa.Table:
    from capa.columnar import empty_table  # numpy + pyarrow: only when a table is built

    return empty_table(schema)
