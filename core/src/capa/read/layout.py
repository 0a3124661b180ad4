"""Long <-> wide: turning one layout of samples into the other, columnar throughout.

Long rows (``t_mono_ns, channel, value, raw_value, unit, status, source_field``) are what
``scalars.parquet`` holds; wide rows (``t_mono_ns`` and one column per channel) are what
``samples/<device>/`` holds. Either is returned in either layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from capa.read.frame import align_wide, channel_field, long_schema
from capa.read.meta import ChannelInfo
from capa.read.scan import TIME

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["conform_long", "long_to_wide", "wide_to_long"]


def _repeat_text(value: str, n: int) -> pa.DictionaryArray:
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(
        pa.repeat(pa.scalar(0, pa.int32()), n), pa.array([value], type=pa.string())
    )


def conform_long(table: pa.Table) -> pa.Table:
    """A piece of ``scalars.parquet`` in the reader's long schema (same columns, same types)."""
    import pyarrow as pa

    schema = long_schema()
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def wide_to_long(table: pa.Table, infos: Sequence[ChannelInfo]) -> pa.Table:
    """Rows of a wide piece as long rows, channel after channel (null values dropped)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = long_schema()
    parts = []
    t = table.column(TIME)
    for info in infos:
        if info.name not in table.column_names:
            continue
        value = table.column(info.name).cast(pa.float64())
        present = pc.is_valid(value)
        n = table.num_rows
        raw_name, status_name = f"{info.name}.raw", f"{info.name}.status"
        raw = (
            table.column(raw_name).cast(pa.float64())
            if raw_name in table.column_names
            else pa.nulls(n, pa.float64())
        )
        status = (
            table.column(status_name).cast(schema.field("status").type)
            if status_name in table.column_names
            else _repeat_text("ok", n)
        )
        piece = pa.Table.from_arrays(
            [
                t,
                _repeat_text(info.name, n),
                value,
                raw,
                _repeat_text(info.unit, n),
                status,
                pa.repeat(pa.scalar(info.source_field, pa.string()), n),
            ],
            schema=schema,
        )
        parts.append(piece.filter(present))
    if not parts:
        return _empty_table(schema)
    return pa.concat_tables(parts)


def long_to_wide(table: pa.Table, infos: Sequence[ChannelInfo]) -> pa.Table:
    """Long rows pivoted to one column per channel, outer-joined on ``t_mono_ns``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pieces = []
    for info in infos:
        rows = table.filter(pc.equal(table.column("channel"), pa.scalar(info.name, pa.string())))
        pieces.append(
            pa.table({TIME: rows.column(TIME), info.name: rows.column("value").cast(pa.float64())})
        )
    return align_wide(pieces, [channel_field(i) for i in infos])


def _empty_table(schema: pa.Schema) -> pa.Table:
    from capa.columnar import empty_table  # numpy + pyarrow: only when a table is built

    return empty_table(schema)
