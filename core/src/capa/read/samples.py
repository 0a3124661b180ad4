"""Reading samples from a bundle's tables: long rows, wide rows, one channel's series.

``scalars.parquet`` holds long rows; ``samples/<device>/part-*.parquet`` hold wide rows
(core/docs/bundle-schema.md). Every read goes through :func:`~capa.read.scan.scan_window`,
so a time window reads only the row groups that overlap it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from capa.errors import BundleError
from capa.read.meta import ChannelInfo
from capa.read.scan import TIME, RowGroupCache, ScanStats, scan_window

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

__all__ = ["SCALARS", "SampleSource"]

SCALARS = "scalars.parquet"


class SampleSource:
    """The sample tables of one bundle.

    ``cache`` (optional) keeps the last row groups read per file, for callers that read
    consecutive windows (``capa export``): a row group spanning several windows is then
    read once.
    """

    def __init__(
        self,
        bundle: Path,
        run_id: str,
        wide_tables: dict[str, list[Path]],
        cache: RowGroupCache | None = None,
    ) -> None:
        self.bundle = bundle
        self.run_id = run_id
        self.wide_tables = wide_tables
        self.cache = cache

    def scalars_path(self) -> Path:
        """``scalars.parquet``; BundleError when only its journal exists (not finalized)."""
        path = self.bundle / SCALARS
        if not path.is_file() and (self.bundle / "scalars.in-flight.arrows").exists():
            raise BundleError(
                f"{path}: missing, the run was not finalized (its journal is still there); "
                f"run `capa finalize {self.run_id}` first"
            )
        return path

    def files(self, infos: Sequence[ChannelInfo]) -> list[Path]:
        """Every Parquet file holding some of ``infos``."""
        out: list[Path] = []
        for table in by_table(infos):
            if table == SCALARS:
                path = self.scalars_path()
                out += [path] if path.is_file() else []
            else:
                out += self.wide_tables.get(table.split("/", 1)[1], [])
        return out

    def _long_pieces(
        self, infos: Sequence[ChannelInfo], lo: int | None, hi: int | None, stats: ScanStats
    ) -> Iterable[pa.Table]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from capa.read.layout import conform_long

        names = pa.array([i.name for i in infos], type=pa.string())

        def only(piece: pa.Table) -> pa.Table:
            return conform_long(piece.filter(pc.is_in(piece.column("channel"), value_set=names)))

        path = self.scalars_path()
        if path.is_file():
            yield from scan_window(
                [path], columns=None, lo=lo, hi=hi, stats=stats, row_filter=only, cache=self.cache
            )

    def _wide_pieces(
        self,
        table: str,
        infos: Sequence[ChannelInfo],
        lo: int | None,
        hi: int | None,
        stats: ScanStats,
        *,
        extra: bool,
    ) -> Iterable[pa.Table]:
        parts = self.wide_tables.get(table.split("/", 1)[1], [])
        columns = [TIME]
        for info in infos:
            columns.append(info.name)
            if extra:
                columns += [f"{info.name}.raw", f"{info.name}.status"]
        yield from scan_window(parts, columns=columns, lo=lo, hi=hi, stats=stats, cache=self.cache)

    def long(
        self, infos: Sequence[ChannelInfo], lo: int | None, hi: int | None, stats: ScanStats
    ) -> pa.Table:
        """Long rows of ``infos`` in ``[lo, hi)``, in time order."""
        import pyarrow as pa

        from capa.read.frame import long_schema
        from capa.read.layout import wide_to_long

        pieces: list[pa.Table] = []
        for table, group in by_table(infos).items():
            if table == SCALARS:
                pieces += list(self._long_pieces(group, lo, hi, stats))
            else:
                pieces += [
                    wide_to_long(p, group)
                    for p in self._wide_pieces(table, group, lo, hi, stats, extra=True)
                ]
        if not pieces:
            return _empty_table(long_schema())
        merged = pa.concat_tables(pieces)
        if _non_decreasing(merged.column(TIME)):
            return merged  # one channel of one table: already in order, no sort copy
        return merged.sort_by([(TIME, "ascending")])  # a stable sort: channel order kept

    def wide(
        self, infos: Sequence[ChannelInfo], lo: int | None, hi: int | None, stats: ScanStats
    ) -> pa.Table:
        """Wide rows of ``infos`` in ``[lo, hi)``: tables outer-joined on ``t_mono_ns``."""
        import pyarrow as pa

        from capa.read.frame import align_wide, channel_field
        from capa.read.layout import long_to_wide

        pieces: list[pa.Table] = []
        for table, group in by_table(infos).items():
            if table == SCALARS:
                long = list(self._long_pieces(group, lo, hi, stats))
                if long:
                    pieces.append(long_to_wide(pa.concat_tables(long), group))
            else:
                parts = list(self._wide_pieces(table, group, lo, hi, stats, extra=False))
                if parts:
                    pieces.append(pa.concat_tables(parts, promote_options="permissive"))
        return align_wide(pieces, [channel_field(i) for i in infos])

    def series(
        self, info: ChannelInfo, lo: int | None, hi: int | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """``(t_mono_ns, values)`` of one channel in ``[lo, hi)``, in time order."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        stats = ScanStats()
        if info.table == SCALARS:
            path = self.scalars_path()
            if not path.is_file():
                return np.empty(0, np.int64), np.empty(0, np.float64)

            name = pa.scalar(info.name, pa.string())

            def only(piece: pa.Table) -> pa.Table:
                return piece.filter(pc.equal(piece.column("channel"), name))

            pieces = list(
                scan_window(
                    [path],
                    columns=[TIME, "channel", "value"],
                    lo=lo,
                    hi=hi,
                    stats=stats,
                    row_filter=only,
                )
            )
            column = "value"
        else:
            pieces = [
                p.filter(pc.is_valid(p.column(info.name)))
                for p in self._wide_pieces(info.table, [info], lo, hi, stats, extra=False)
            ]
            column = info.name
        if not pieces:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        t = np.concatenate([p.column(TIME).to_numpy() for p in pieces]).astype(np.int64)
        v = np.concatenate(
            [p.column(column).to_numpy(zero_copy_only=False) for p in pieces]
        ).astype(np.float64)
        if t.size > 1 and bool(np.any(np.diff(t) < 0)):
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[order]
        return t, v


def _non_decreasing(times: pa.ChunkedArray) -> bool:
    import numpy as np

    previous: int | None = None
    for chunk in times.chunks:
        t = chunk.to_numpy()
        if not t.size:
            continue
        if previous is not None and t[0] < previous:
            return False
        if t.size > 1 and not bool(np.all(t[1:] >= t[:-1])):
            return False
        previous = int(t[-1])
    return True


def by_table(infos: Sequence[ChannelInfo]) -> dict[str, list[ChannelInfo]]:
    """``infos`` grouped by the table holding them, in first-seen order."""
    grouped: dict[str, list[ChannelInfo]] = {}
    for info in infos:
        grouped.setdefault(info.table, []).append(info)
    return grouped


def _empty_table(schema: pa.Schema) -> pa.Table:
    from capa.columnar import empty_table  # numpy + pyarrow: only when a table is built

    return empty_table(schema)
