"""Turning what producers hand the writer into Arrow batches, or refusing it clearly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from capa.components.emissions import FrameReceipt
from capa.errors import BundleError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["checked_frame", "describe_schema", "to_record_batch"]


def to_record_batch(columns: Any) -> pa.RecordBatch:
    """Device-record columns (mapping, RecordBatch or Table) as one RecordBatch."""
    import pyarrow as pa

    if isinstance(columns, pa.RecordBatch):
        return columns
    if isinstance(columns, pa.Table):
        return pa.RecordBatch.from_arrays(
            [c.combine_chunks() for c in columns.columns], schema=columns.schema
        )
    if isinstance(columns, Mapping):
        from capa.columnar import column

        try:
            # capa.columnar, not from_pydict: pyarrow.array() imports pandas (h/wide).
            names = [str(k) for k in columns]
            return pa.RecordBatch.from_arrays([column(v) for v in columns.values()], names)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise BundleError(f"device records are not a valid table: {exc}") from exc
    raise BundleError(
        f"device records must be a column mapping or a pyarrow RecordBatch, "
        f"got {type(columns).__name__}"
    )


def checked_frame(record: FrameReceipt) -> FrameReceipt:
    """The receipt with plain-typed fields, or BundleError (a bad one must not reach a flush)."""
    try:
        return FrameReceipt(
            frame_idx=int(record.frame_idx),
            t_mono_ns=int(record.t_mono_ns),
            t_utc=str(record.t_utc),
            capture_latency_s=float(record.capture_latency_s),
            device=record.device,
        )
    except (TypeError, ValueError) as exc:
        raise BundleError(f"frame receipt of {record.device!r} is malformed: {exc}") from exc


def describe_schema(schema: pa.Schema) -> str:
    """``name: type, ...`` for error messages."""
    return ", ".join(f"{f.name}: {f.type}" for f in schema)
