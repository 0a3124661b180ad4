"""Arrow schemas of the bundle's tables and helpers that build batches in them.

``scalars`` is the long form of every calibrated channel sample (ARCHITECTURE.md 6)::

    t_mono_ns     int64                 run-clock nanoseconds (join key), never null
    channel       dictionary<string>    channel name
    value         float64               calibrated value
    raw_value     float64, nullable     value before calibration (channels with keep_raw)
    unit          dictionary<string>    unit of ``value``
    status        dictionary<string>    ok, underrange, overload, sensor_fail, comm_error, ...
    source_field  string, nullable      "device.field" the sample came from

Everything here is columnar: a batch is converted with vectorised casts, never row by row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capa.components.emissions import SampleStatus
from capa.errors import BundleError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FRAME_COLUMNS",
    "STATUS_VALUES",
    "conform_scalars",
    "frames_schema",
    "scalar_batch",
    "scalars_schema",
]

STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in SampleStatus)
"""The sample statuses capa itself produces; the dictionary stays open to others."""

FRAME_COLUMNS: tuple[str, ...] = ("frame_idx", "t_mono_ns", "t_utc", "capture_latency_s")


def scalars_schema() -> pa.Schema:
    """The Arrow schema of ``scalars`` (in-flight stream and Parquet alike)."""
    import pyarrow as pa

    text_dict = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field("channel", text_dict, nullable=False),
            pa.field("value", pa.float64()),
            pa.field("raw_value", pa.float64()),
            pa.field("unit", text_dict),
            pa.field("status", text_dict, nullable=False),
            pa.field("source_field", pa.string()),
        ],
        metadata={b"capa.table": b"scalars"},
    )


def frames_schema() -> pa.Schema:
    """The Arrow schema of ``video/<camera>.frames`` (one row per captured frame)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("frame_idx", pa.int64(), nullable=False),
            pa.field("t_mono_ns", pa.int64(), nullable=False),
            pa.field("t_utc", pa.string()),
            pa.field("capture_latency_s", pa.float64()),
        ],
        metadata={b"capa.table": b"frames"},
    )


def _column(value: Any, length: int, typ: pa.DataType) -> pa.Array:
    """An array of ``length`` from a scalar (repeated) or an array-like, cast to ``typ``."""
    import pyarrow as pa

    if value is None and pa.types.is_dictionary(typ):
        # Null indices into an empty dictionary: a null *entry* in a dictionary would stop
        # finalize from unifying the dictionaries of different batches.
        empty = pa.array([], type=typ.value_type)
        return pa.DictionaryArray.from_arrays(pa.nulls(length, pa.int32()), empty)
    if value is None or isinstance(value, str | int | float):
        base = pa.array([value], type=typ.value_type if pa.types.is_dictionary(typ) else typ)
        if pa.types.is_dictionary(typ):
            # One dictionary entry, ``length`` zero indices: no per-row Python objects.
            indices = pa.repeat(pa.scalar(0, pa.int32()), length)
            return pa.DictionaryArray.from_arrays(indices, base)
        return pa.repeat(base[0], length)
    arr = value if isinstance(value, pa.Array | pa.ChunkedArray) else pa.array(value)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) != length:
        raise BundleError(f"scalars column has {len(arr)} values, expected {length}")
    if pa.types.is_dictionary(typ) and not pa.types.is_dictionary(arr.type):
        return arr.cast(typ.value_type).dictionary_encode().cast(typ)
    return arr.cast(typ)


def scalar_batch(
    t_mono_ns: Any,
    channel: str | Any,
    value: Any,
    *,
    unit: str | Any | None = None,
    status: str | Any = "ok",
    raw_value: Any = None,
    source_field: str | Any | None = None,
) -> pa.RecordBatch:
    """Build a ``scalars`` batch from columns; a plain string is repeated for every row.

    Args:
        t_mono_ns: int64 run-clock times (numpy array, pyarrow array or sequence).
        channel: channel name(s).
        value: calibrated values.
        unit: unit(s) of ``value``.
        status: sample status(es), ``ok`` by default.
        raw_value: uncalibrated values, or ``None``.
        source_field: ``device.field`` the rows came from, or ``None``.
    """
    import pyarrow as pa

    schema = scalars_schema()
    times = _column(t_mono_ns, len(t_mono_ns), pa.int64())
    n = len(times)
    columns = [
        times,
        _column(channel, n, schema.field("channel").type),
        _column(value, n, pa.float64()),
        _column(raw_value, n, pa.float64()),
        _column(unit, n, schema.field("unit").type),
        _column(status, n, schema.field("status").type),
        _column(source_field, n, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def conform_scalars(batch: Any) -> pa.RecordBatch:
    """Cast a batch to the ``scalars`` schema (vectorised), or raise BundleError.

    Accepts a ``pyarrow.RecordBatch`` or ``Table`` carrying at least ``t_mono_ns``,
    ``channel`` and ``value``; missing optional columns are filled with nulls (``status``
    with ``ok``); extra columns are refused so nothing is silently dropped.
    """
    import pyarrow as pa

    schema = scalars_schema()
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()
        batch = batch[0] if batch else _empty(schema)
    if not isinstance(batch, pa.RecordBatch):
        raise BundleError(f"scalar rows must be a pyarrow RecordBatch, got {type(batch).__name__}")
    if batch.schema.equals(schema, check_metadata=False):
        return _checked(batch.replace_schema_metadata(schema.metadata))
    names = batch.schema.names
    extra = sorted(set(names) - set(schema.names))
    missing = [c for c in ("t_mono_ns", "channel", "value") if c not in names]
    if extra or missing:
        raise BundleError(
            "scalar rows do not match the scalars schema: "
            + "; ".join(
                part
                for part in (
                    f"missing columns {missing}" if missing else "",
                    f"unknown columns {extra}" if extra else "",
                )
                if part
            )
        )
    defaults: dict[str, Any] = {"status": "ok"}
    try:
        columns = [
            _column(
                batch.column(f.name) if f.name in names else defaults.get(f.name),
                batch.num_rows,
                f.type,
            )
            for f in schema
        ]
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise BundleError(f"scalar rows cannot be cast to the scalars schema: {exc}") from exc
    return _checked(pa.RecordBatch.from_arrays(columns, schema=schema))


def _checked(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Refuse nulls where the schema forbids them (Parquet would refuse them at finalize)."""
    nulls = [f.name for f in batch.schema if not f.nullable and batch.column(f.name).null_count]
    if nulls:
        raise BundleError(f"scalar rows have nulls in non-nullable columns {nulls}")
    return batch


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
