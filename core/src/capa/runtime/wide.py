"""Wide sample tables: one row per sample-clock tick of a streamed device.

A device whose adapter streams hardware-clocked blocks (``Adapter.sampling()`` is
``streamed``) is recorded in ``samples/<device>/`` (``core/docs/bundle-schema.md``):
``t_mono_ns`` plus, per recorded channel, ``<channel>`` (float64), ``<channel>.raw``
(``keep_raw`` channels) and ``<channel>.status`` (dictionary), then the derived channels the
device's batches trigger. The schema is fixed when the pipeline is built, so every batch
of a run has the same columns; a field a batch lacks is null in that batch.

Building a batch costs a fixed number of numpy/Arrow operations per column whatever the
block length — zero-copy for float64 values already contiguous — and no Python object per
sample, which is what makes the wide layout several times cheaper than the long one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from capa import columnar
from capa.components.adapter import Acquisition, Adapter
from capa.runtime.channel_meta import BUNDLE_SCHEMA_VERSION, channel_meta, field_metadata
from capa.runtime.plan import ChannelPlan, DerivedPlan

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "RAW_SUFFIX",
    "STATUS_SUFFIX",
    "ChannelColumns",
    "WideColumn",
    "WideTable",
    "streamed_devices",
]

RAW_SUFFIX = ".raw"
STATUS_SUFFIX = ".status"

_STATUS_TYPE = pa.dictionary(pa.int32(), pa.string())


def streamed_devices(adapters: Iterable[tuple[str, Adapter]]) -> frozenset[str]:
    """Names of the devices whose adapter instance streams (recorded wide)."""
    return frozenset(name for name, a in adapters if a.sampling() is Acquisition.STREAMED)


@dataclass(frozen=True, slots=True)
class WideColumn:
    """One channel of a wide table (its value, optional raw and status columns)."""

    name: str
    keep_raw: bool


@dataclass(frozen=True, slots=True)
class ChannelColumns:
    """What a batch supplies for one channel: values, raw values, status codes.

    ``raw`` is ``None`` for channels without ``keep_raw``; ``status`` holds int32 codes
    into the pipeline's status dictionary.
    """

    value: npt.NDArray[np.float64]
    raw: npt.NDArray[np.float64] | None
    status: npt.NDArray[np.int32]


class WideTable:
    """The fixed schema of one device's wide table and the batches built in it."""

    def __init__(
        self,
        device: str,
        channels: Sequence[ChannelPlan],
        derived: Sequence[DerivedPlan] = (),
    ) -> None:
        """A table of ``channels``, then ``derived``.

        ``channels``: the device's recorded channels, in file order; ``derived``: the
        recorded derived channels its batches trigger, in evaluation order.
        """
        self.device = device
        self.columns: tuple[WideColumn, ...] = (
            *(WideColumn(c.name, c.keep_raw) for c in channels),
            *(WideColumn(d.name, False) for d in derived),
        )
        fields = [pa.field("t_mono_ns", pa.int64(), nullable=False)]
        plans: list[ChannelPlan | DerivedPlan] = [*channels, *derived]
        metas = [channel_meta(c) for c in plans]
        for column, meta in zip(self.columns, metas, strict=True):
            fields.append(pa.field(column.name, pa.float64(), metadata=field_metadata(meta)))
            if column.keep_raw:
                fields.append(
                    pa.field(
                        column.name + RAW_SUFFIX,
                        pa.float64(),
                        metadata=field_metadata(meta, "raw"),
                    )
                )
            fields.append(
                pa.field(
                    column.name + STATUS_SUFFIX,
                    _STATUS_TYPE,
                    metadata=field_metadata(meta, "status"),
                )
            )
        self.schema = pa.schema(
            fields,
            metadata={
                "capa.table": "samples",
                "capa.device": device,
                "capa.bundle_schema_version": str(BUNDLE_SCHEMA_VERSION),
            },
        )
        self.names = frozenset(c.name for c in self.columns)

    def __bool__(self) -> bool:
        """Whether the table records anything (a device may have no recorded channel)."""
        return bool(self.columns)

    def batch(
        self,
        t: npt.NDArray[np.int64],
        supplied: Mapping[str, ChannelColumns],
        status_dictionary: pa.Array,
    ) -> pa.RecordBatch:
        """One record batch of ``len(t)`` rows; channels not in ``supplied`` are null."""
        n = len(t)
        arrays: list[pa.Array] = [columnar.int64(t)]
        missing: pa.Array | None = None
        missing_status: pa.Array | None = None
        for column in self.columns:
            got = supplied.get(column.name)
            if got is None:
                if missing is None:
                    missing = pa.nulls(n, pa.float64())
                    # Null codes into the run's status dictionary (not an empty one), so
                    # the stream's dictionary does not flip back and forth between batches.
                    none = np.zeros(n, dtype=bool)
                    missing_status = columnar.dictionary(
                        np.zeros(n, np.int32), status_dictionary, none
                    )
                assert missing_status is not None
                arrays.append(missing)
                if column.keep_raw:
                    arrays.append(missing)
                arrays.append(missing_status)
                continue
            arrays.append(columnar.float64(got.value))
            if column.keep_raw:
                raw = got.raw if got.raw is not None else got.value
                arrays.append(columnar.float64(raw))
            arrays.append(columnar.dictionary(got.status, status_dictionary))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
