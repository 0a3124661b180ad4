"""Sorting a run's batches by ``t_mono_ns`` without holding a sorted copy of the run.

Each device's samples arrive in time order, but devices interleave: a DAQ block spans
100 ms while a controller's single rows fall inside it. So the batches of an in-flight
stream are not globally sorted, yet they split into a few sorted *runs* (about one per
device). Finalize merges those runs in bounded chunks — a k-way merge with a watermark —
instead of sorting the whole recording at once, which for a long high-rate run would need
several times the run's size in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["sort_table", "sorted_chunks"]

_TIME = "t_mono_ns"


def sorted_chunks(
    batches: Sequence[pa.RecordBatch], schema: pa.Schema, chunk_rows: int
) -> Iterator[pa.Table]:
    """Tables that, written one after another, hold every row sorted by ``t_mono_ns``.

    Rows with equal times may be reordered between devices. Memory stays near
    ``chunk_rows`` plus one batch per run. Times must not be null.
    """
    runs = _sorted_runs([_sorted_batch(b) for b in batches if b.num_rows])
    if not runs:
        return
    loaded = [0] * len(runs)
    high: list[float] = [float("-inf")] * len(runs)  # largest time loaded per run
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    while True:
        # Load from the run holding the watermark back (the lowest high time).
        active = [r for r in range(len(runs)) if loaded[r] < len(runs[r])]
        if active:
            r = min(active, key=lambda i: high[i])
            batch = runs[r][loaded[r]]
            loaded[r] += 1
            pending.append(batch)
            pending_rows += batch.num_rows
            high[r] = batch.column(_TIME)[-1].as_py()
            if loaded[r] == len(runs[r]):
                high[r] = float("inf")  # exhausted: never holds the watermark back again
        # Every row at or below the watermark is final: no run can still produce one.
        watermark = min(high)
        if pending_rows < chunk_rows and watermark != float("inf"):
            continue
        table = sort_table(pending, schema)
        cut = _rows_at_or_below(table, watermark)
        if cut:
            yield table.slice(0, cut)
        rest = table.slice(cut)
        pending = rest.to_batches()
        pending_rows = rest.num_rows
        if not active and not pending_rows:
            return


def sort_table(batches: Sequence[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """One table of ``batches``, stably sorted by ``t_mono_ns``."""
    import pyarrow as pa

    table = pa.Table.from_batches(list(batches), schema=schema)
    try:
        return table.unify_dictionaries().sort_by(_TIME)
    except pa.ArrowInvalid:
        # Dictionaries holding a null entry cannot be unified: sort decoded values and
        # encode them again.
        plain = pa.schema(
            [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in schema
            ]
        )
        return table.cast(plain).sort_by(_TIME).cast(schema)


def _sorted_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    import pyarrow.compute as pc

    t = batch.column(_TIME)
    if len(t) < 2 or pc.all(pc.less_equal(t.slice(0, len(t) - 1), t.slice(1))).as_py():
        return batch
    return batch.take(pc.sort_indices(batch, sort_keys=[(_TIME, "ascending")]))


def _sorted_runs(batches: list[pa.RecordBatch]) -> list[list[pa.RecordBatch]]:
    """Split internally sorted batches into runs that are each sorted end to end."""
    runs: list[list[pa.RecordBatch]] = []
    last: list[int] = []
    for batch in batches:
        t = batch.column(_TIME)
        first = t[0].as_py()
        # Append to the run whose end is latest but still not after this batch's start:
        # keeps runs few (about one per device) when devices interleave.
        best = -1
        for i, end in enumerate(last):
            if end <= first and (best < 0 or end > last[best]):
                best = i
        if best < 0:
            runs.append([batch])
            last.append(t[-1].as_py())
        else:
            runs[best].append(batch)
            last[best] = t[-1].as_py()
    return runs


def _rows_at_or_below(table: pa.Table, watermark: float) -> int:
    """How many leading rows of a sorted table have ``t_mono_ns <= watermark``."""
    import numpy as np

    if watermark == float("inf"):
        return int(table.num_rows)
    times = table.column(_TIME).to_numpy()
    return int(np.searchsorted(times, watermark, side="right"))
