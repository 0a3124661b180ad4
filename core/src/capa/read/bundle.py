"""``capa.open_bundle``: the one way into a run bundle for Python users.

::

    import capa
    b = capa.open_bundle("runs/20260524T143200-7f3a")     # or just the run id
    b.manifest["sample"]["id"]
    b.channels()["furnace_t"].unit                        # 'degC'
    df = b.samples(["furnace_t", "mass"], start=60, end=70).to_pandas()
    t, v = b.series("furnace_t")                          # numpy, for plotting
    b.events(severity="warning").to_pylist()
    b.verify().ok

Everything is read lazily and only what is asked for: a time window reads the Parquet row
groups that overlap it and nothing else (:mod:`capa.read.scan`). Bundles of schema version
2 (core/docs/bundle-schema.md) and version 1 are read alike; see :mod:`capa.read.meta` for
where version 1's channel facts come from.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from capa.errors import BundleError
from capa.read.frame import Frame
from capa.read.meta import ChannelInfo, channels_from_config
from capa.read.samples import SampleSource
from capa.read.scan import TIME, ScanStats, scan_window

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    from capa.bundle.integrity import VerifyResult

__all__ = ["READABLE_VERSIONS", "Artifact", "Bundle", "TimeLike", "open_bundle"]

READABLE_VERSIONS: Final = (1, 2)
"""Bundle schema versions this reader understands."""

TimeLike = float | int | timedelta | datetime | None
"""A window bound: seconds of run time, a run-time timedelta, or an absolute datetime."""

_MANIFEST = "manifest.json"
_SCALARS = "scalars.parquet"
_SAMPLES = "samples"
_RECORDS = "device_records"
_VIDEO = "video"
_EVENTS = "events.sqlite"
_CHECKSUMS = "manifest.sha256"
_JOURNAL = ".in-flight.arrows"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file of a bundle: ``path`` relative to the bundle, its size and its category."""

    path: str
    size: int
    category: str


def open_bundle(
    path_or_run_id: str | os.PathLike[str], *, runs_root: str | os.PathLike[str] | None = None
) -> Bundle:
    """Open a run bundle for reading (nothing is read but ``manifest.json``).

    Args:
        path_or_run_id: the bundle directory, or a run id looked up in the runs root.
        runs_root: where run ids are looked up (default ``$CAPA_RUNS_ROOT``, else
            ``./runs``), as for every ``capa`` command.

    Raises:
        BundleError: no such bundle, no readable manifest, or a schema version this capa
            does not know.
    """
    from capa.bundle.paths import resolve_runs_root

    given = Path(path_or_run_id)
    if (given / _MANIFEST).is_file() or given.is_dir():
        path = given
    else:
        text = os.fspath(path_or_run_id)
        root = resolve_runs_root(runs_root)
        candidate = root / text
        if os.sep in text or (os.altsep and os.altsep in text) or not candidate.is_dir():
            raise BundleError(f"no run bundle at {given} (nor run {text!r} under {root})")
        path = candidate
    return Bundle(path)


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / _MANIFEST
    try:
        data = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{file}: manifest missing (not a run bundle)") from None
    except OSError as exc:
        raise BundleError(f"{file}: cannot read manifest: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file}: manifest is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{file}: manifest must be a JSON object")
    version = data.get("bundle_schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise BundleError(
            f"{file}: bundle_schema_version {version!r} is not one this capa reads "
            f"({', '.join(str(v) for v in READABLE_VERSIONS)})"
        )
    return data


def _parse_utc(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _delta_ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class Bundle:
    """A run bundle opened for reading. Create it with :func:`open_bundle`.

    Attributes:
        path: the bundle directory.
        run_id: the run id (``manifest.run_id``).
        schema_version: ``bundle_schema_version`` (1 or 2).
        manifest: ``manifest.json`` as a dict.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = _read_manifest(self.path)
        self.run_id: str = str(self.manifest.get("run_id") or self.path.name)
        self.schema_version: int = int(self.manifest["bundle_schema_version"])
        self._channels: dict[str, ChannelInfo] | None = None

    def __repr__(self) -> str:
        return f"<capa Bundle {self.run_id} v{self.schema_version} at {self.path}>"

    # ------------------------------------------------------------------ time
    @property
    def sealed(self) -> bool:
        """Whether the bundle has its ``manifest.sha256`` (it was finalized)."""
        return (self.path / _CHECKSUMS).is_file()

    @property
    def clock(self) -> dict[str, Any]:
        """The clock anchor: ``utc_at_zero``, ``monotonic_origin_ns`` and ``method``.

        Version 2 records it (``manifest.clock``); for older bundles it is
        ``started_utc``, which was read just after the run clock's zero, unbracketed.
        """
        block = self.manifest.get("clock")
        if isinstance(block, dict) and block.get("utc_at_zero"):
            return dict(block)
        return {
            "utc_at_zero": self.manifest.get("started_utc"),
            "monotonic_origin_ns": None,
            "method": "started_utc (no clock anchor recorded: read once just after the "
            "run clock's zero, not bracketed)",
        }

    @property
    def utc_at_zero(self) -> datetime | None:
        """Absolute (UTC) time of ``t_mono_ns == 0``, when known."""
        return _parse_utc(self.clock.get("utc_at_zero"))

    def t_utc(self, t_mono_ns: Any) -> Any:
        """Absolute UTC time of run-clock nanoseconds.

        An ``int`` gives a ``datetime`` (microsecond resolution); an array gives a numpy
        ``datetime64[ns]`` array (UTC, naive as numpy requires).

        Raises:
            BundleError: the bundle records no start time at all.
        """
        zero = self.utc_at_zero
        if zero is None:
            raise BundleError(f"run {self.run_id}: the manifest records no clock anchor")
        if isinstance(t_mono_ns, int):
            return zero + timedelta(microseconds=t_mono_ns / 1000)
        import numpy as np

        base = np.datetime64(zero.replace(tzinfo=None), "ns")
        return base + np.asarray(t_mono_ns, dtype=np.int64).astype("timedelta64[ns]")

    def to_ns(self, moment: TimeLike) -> int | None:
        """A window bound in run-clock nanoseconds (seconds, timedelta or datetime)."""
        if moment is None:
            return None
        if isinstance(moment, bool):
            raise BundleError(f"a time bound must be seconds or a datetime, not {moment!r}")
        if isinstance(moment, datetime):
            zero = self.utc_at_zero
            if zero is None:
                raise BundleError(
                    f"run {self.run_id}: no clock anchor, so a datetime cannot be placed "
                    "on the run clock; give seconds of run time instead"
                )
            aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
            return _delta_ns(aware - zero)
        if isinstance(moment, timedelta):
            return _delta_ns(moment)
        if isinstance(moment, int | float):
            return round(float(moment) * 1e9) if isinstance(moment, float) else moment * 10**9
        raise BundleError(
            f"a time bound must be seconds, a timedelta or a datetime, not {type(moment).__name__}"
        )

    # ------------------------------------------------------------------ channels
    def channels(self) -> dict[str, ChannelInfo]:
        """Every recorded channel, name -> :class:`~capa.read.meta.ChannelInfo`."""
        if self._channels is None:
            self._channels = self._discover_channels()
        return dict(self._channels)

    def _discover_channels(self) -> dict[str, ChannelInfo]:
        import dataclasses

        import pyarrow.parquet as pq

        from capa.read.meta import channels_from_scalars_schema, channels_from_wide_schema

        configured = channels_from_config(self.path, self.manifest)
        described: dict[str, ChannelInfo] = {}
        scalars = self.path / _SCALARS
        if self.schema_version >= 2 and scalars.is_file():
            described.update(channels_from_scalars_schema(pq.read_schema(scalars)))
        for device, parts in self._wide_tables().items():
            table = f"{_SAMPLES}/{device}"
            described.update(channels_from_wide_schema(pq.read_schema(parts[0]), device, table))
        out: dict[str, ChannelInfo] = {}
        recorded = self._recorded_names()
        for name, info in configured.items():
            if name in described:
                continue
            if recorded is None or name in recorded:
                out[name] = info  # version 1, or a version-2 file without the metadata
        for name, info in described.items():
            base = configured.get(name)
            if base is not None:  # fill what the file left blank from the hardware file
                blanks = {
                    k: getattr(base, k)
                    for k in (
                        "unit",
                        "raw_unit",
                        "kind",
                        "device",
                        "field",
                        "calibration",
                        "plot_group",
                    )
                    if not getattr(info, k)
                }
                out[name] = dataclasses.replace(info, **blanks)
            else:
                out[name] = info
        return out

    def _recorded_names(self) -> set[str] | None:
        recording = self.manifest.get("recording")
        if isinstance(recording, dict) and isinstance(recording.get("channels"), list):
            return {str(c) for c in recording["channels"]}
        return None

    def sample_source(self) -> SampleSource:
        """Where this bundle's samples are (for readers that stream: ``capa export``)."""
        return SampleSource(self.path, self.run_id, self._wide_tables())

    def _wide_tables(self) -> dict[str, list[Path]]:
        folder = self.path / _SAMPLES
        if not folder.is_dir():
            return {}
        out: dict[str, list[Path]] = {}
        for device_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            parts = sorted(device_dir.glob("part-*.parquet"))
            if parts:
                out[device_dir.name] = parts
        return out

    def select_channels(self, channels: str | Iterable[str] | None) -> list[ChannelInfo]:
        """Facts of ``channels`` (all when None), or BundleError naming unknown ones."""
        known = self.channels()
        if channels is None:
            return list(known.values())
        names = [channels] if isinstance(channels, str) else list(channels)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BundleError(
                f"run {self.run_id} has no channel {', '.join(map(repr, unknown))} "
                f"(channels: {', '.join(known) or 'none'})"
            )
        return [known[n] for n in dict.fromkeys(names)]

    # ------------------------------------------------------------------ samples
    def samples(
        self,
        channels: str | Iterable[str] | None = None,
        *,
        start: TimeLike = None,
        end: TimeLike = None,
        layout: Literal["long", "wide"] = "long",
        utc: bool = False,
    ) -> Frame:
        """Samples of ``channels`` (default: all) with ``start <= t < end``.

        Args:
            channels: a name or names; unknown names raise :class:`BundleError`.
            start: window start (inclusive): seconds of run time, a ``timedelta`` or an
                absolute ``datetime`` (naive = UTC), placed with the clock anchor.
            end: window end (exclusive), likewise.
            layout: ``long`` (one row per sample: ``t_mono_ns, channel, value, raw_value,
                unit, status, source_field``) or ``wide`` (``t_mono_ns`` and one float
                column per channel; devices are outer-joined on ``t_mono_ns``, so a
                channel is null at times its device did not sample).
            utc: add a ``t_utc`` column (timestamp[ns, UTC]) from the clock anchor.

        Only the Parquet row groups overlapping the window are read (``.stats`` says
        how many).
        """
        if layout not in ("long", "wide"):
            raise BundleError(f"layout must be 'long' or 'wide', not {layout!r}")
        lo, hi = self.to_ns(start), self.to_ns(end)
        infos = self.select_channels(channels)
        stats = ScanStats()
        source = self.sample_source()
        if layout == "long":
            table = source.long(infos, lo, hi, stats)
        else:
            table = source.wide(infos, lo, hi, stats)
        if utc:
            table = self._with_utc(table)
        return Frame(
            table,
            kind=layout,
            channels={i.name: i for i in infos},
            utc_at_zero=self.utc_at_zero,
            stats=stats,
        )

    def _with_utc(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa

        zero = self.utc_at_zero
        if zero is None:
            raise BundleError(f"run {self.run_id}: the manifest records no clock anchor")
        times = self.t_utc(table.column(TIME).to_numpy())
        return table.append_column(
            pa.field("t_utc", pa.timestamp("ns", tz="UTC")),
            pa.array(times, type=pa.timestamp("ns")).cast(pa.timestamp("ns", tz="UTC")),
        )

    def series(
        self, channel: str, start: TimeLike = None, end: TimeLike = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """``(t_mono_ns, values)`` of one channel as numpy arrays, in time order.

        For plotting: int64 run-clock nanoseconds and float64 calibrated values (NaN
        where a sample had no value). Reads only this channel's column (wide tables) or
        rows (``scalars.parquet``) in the window.
        """
        (info,) = self.select_channels([channel])
        return self.sample_source().series(info, self.to_ns(start), self.to_ns(end))

    # ------------------------------------------------------------------ events & records
    def events(
        self,
        kind: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        *,
        start: TimeLike = None,
        end: TimeLike = None,
    ) -> Frame:
        """Events (seed 003's table) in time order, optionally filtered.

        Args:
            kind: a kind or kinds; ``*`` and ``?`` are wildcards (``method.step.*``).
            severity: ``info``, ``warning``, ``error``, or several.
            start: window start (as for :meth:`samples`).
            end: window end (exclusive).

        Columns: ``id, t_mono_ns, t_utc, kind, severity, source, message, metadata``
        (``metadata`` is the JSON text, or null).
        """
        import pyarrow as pa

        where: list[str] = []
        params: list[Any] = []
        for column, value, op in (("kind", kind, "GLOB"), ("severity", severity, "=")):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            where.append("(" + " OR ".join(f"{column} {op} ?" for _ in values) + ")")
            params += values
        lo, hi = self.to_ns(start), self.to_ns(end)
        if lo is not None:
            where.append("t_mono_ns >= ?")
            params.append(lo)
        if hi is not None:
            where.append("t_mono_ns < ?")
            params.append(hi)
        sql = (
            "SELECT id, t_mono_ns, t_utc, kind, severity, source, message, metadata_json "
            "FROM events"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY t_mono_ns, id"
        )
        rows = self._query_events(sql, params)
        names = ["id", TIME, "t_utc", "kind", "severity", "source", "message", "metadata"]
        types = [pa.int64(), pa.int64(), *[pa.string()] * 6]
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        table = pa.Table.from_arrays(
            [pa.array(list(c), type=t) for c, t in zip(columns, types, strict=True)],
            names=names,
        )
        return Frame(table, utc_at_zero=self.utc_at_zero)

    def _query_events(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        path = self.path / _EVENTS
        if not path.is_file():
            raise BundleError(f"{path}: missing")
        # A sealed bundle's database is one self-contained file: open it immutable, so
        # reading never creates a -shm / -wal file beside it (that would be an extra file
        # for `sha256sum -c` and capa's verification).
        immutable = self.sealed and not Path(f"{path}-wal").exists()
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise BundleError(f"{path}: cannot open: {exc}") from exc
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise BundleError(f"{path}: cannot read events: {exc}") from exc
        finally:
            conn.close()

    def device_record_families(self) -> list[str]:
        """Families with a ``device_records/<family>.parquet`` table."""
        folder = self.path / _RECORDS
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def device_records(self, family: str, *, start: TimeLike = None, end: TimeLike = None) -> Frame:
        """A device family's native records (``device_records/<family>.parquet``).

        Every table read through here has ``t_mono_ns`` (version-1 Sartorius tables lack
        it: their ``t_receive_ns`` is used, which is the sample time) and ``raw`` as
        binary (version 1 stored hex text; it is decoded).
        """
        from capa.bundle.paths import safe_component

        name = safe_component(family, "device-record family")
        path = self.path / _RECORDS / f"{name}.parquet"
        if not path.is_file():
            raise BundleError(
                f"run {self.run_id} has no device records {family!r} "
                f"(families: {', '.join(self.device_record_families()) or 'none'})"
            )
        return Frame(
            self._read_table(path, start, end, normalise=True), utc_at_zero=self.utc_at_zero
        )

    def cameras(self) -> list[str]:
        """Cameras with a frame index (``video/<camera>.frames.parquet``)."""
        folder = self.path / _VIDEO
        if not folder.is_dir():
            return []
        return sorted(
            p.name.removesuffix(".frames.parquet") for p in folder.glob("*.frames.parquet")
        )

    def frames(self, camera: str, *, start: TimeLike = None, end: TimeLike = None) -> Frame:
        """A camera's frame index: ``frame_idx, t_mono_ns, t_utc, capture_latency_s``."""
        from capa.bundle.paths import safe_component

        name = safe_component(camera, "camera")
        path = self.path / _VIDEO / f"{name}.frames.parquet"
        if not path.is_file():
            raise BundleError(
                f"run {self.run_id} has no frame index for camera {camera!r} "
                f"(cameras: {', '.join(self.cameras()) or 'none'})"
            )
        return Frame(self._read_table(path, start, end), utc_at_zero=self.utc_at_zero)

    def _read_table(
        self, path: Path, start: TimeLike, end: TimeLike, *, normalise: bool = False
    ) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        lo, hi = self.to_ns(start), self.to_ns(end)
        schema = pq.read_schema(path)
        if normalise and TIME not in schema.names and (lo is not None or hi is not None):
            if "t_receive_ns" not in schema.names:
                raise BundleError(f"{path}: no t_mono_ns column, so no time window applies")
            table = _normalise_records(pq.read_table(path))
            mask = _window_mask(table.column(TIME), lo, hi)
            return table.filter(mask)
        pieces = list(scan_window([path], columns=None, lo=lo, hi=hi, stats=ScanStats()))
        table = pa.concat_tables(pieces) if pieces else _empty_table(schema)
        return _normalise_records(table) if normalise else table

    # ------------------------------------------------------------------ files
    def artifacts(self) -> list[Artifact]:
        """Every file of the bundle, with its size and category.

        Categories: ``manifest``, ``checksums``, ``events``, ``log``, ``scalars``, and for
        files in folders the folder (``config``, ``samples``, ``device_records``,
        ``video``, ...). ``path`` is relative to :attr:`path`.
        """
        top = {
            _MANIFEST: "manifest",
            _CHECKSUMS: "checksums",
            _EVENTS: "events",
            "run.log": "log",
            _SCALARS: "scalars",
        }
        out: list[Artifact] = []
        for root, _dirs, names in os.walk(self.path):
            for name in names:
                full = Path(root) / name
                rel = full.relative_to(self.path).as_posix()
                category = rel.split("/", 1)[0] if "/" in rel else top.get(rel, "other")
                try:
                    size = full.lstat().st_size
                except OSError:
                    continue  # vanished while listing (an open bundle): not a file of it
                out.append(Artifact(rel, size, category))
        return sorted(out, key=lambda a: a.path)

    def verify(self) -> VerifyResult:
        """Re-hash every file against ``manifest.sha256`` (reads only; see ``.ok``)."""
        from capa.bundle.integrity import verify_bundle

        return verify_bundle(self.path)


def _window_mask(t: Any, lo: int | None, hi: int | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pc.is_valid(t)
    if lo is not None:
        mask = pc.and_(mask, pc.greater_equal(t, pa.scalar(lo, pa.int64())))
    if hi is not None:
        mask = pc.and_(mask, pc.less(t, pa.scalar(hi, pa.int64())))
    return mask


def _normalise_records(table: pa.Table) -> pa.Table:
    """Version-1 device records in today's shape: ``t_mono_ns`` first, ``raw`` binary."""
    import pyarrow as pa

    if TIME not in table.column_names and "t_receive_ns" in table.column_names:
        table = table.add_column(0, TIME, table.column("t_receive_ns").cast(pa.int64()))
    if "raw" in table.column_names and pa.types.is_string(table.schema.field("raw").type):
        texts = table.column("raw").to_pylist()
        try:
            raw = [None if s is None else bytes.fromhex(s) for s in texts]
        except ValueError:
            return table  # not hex after all: leave the text as it was recorded
        index = table.column_names.index("raw")
        table = table.set_column(index, "raw", pa.array(raw, type=pa.binary()))
    return table


def _empty_table(schema: pa.Schema) -> pa.Table:
    from capa.columnar import empty_table  # numpy + pyarrow: only when a table is built

    return empty_table(schema)
