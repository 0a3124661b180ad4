"""The four views of ``capa catalog query``: ``runs``, ``events``, ``samples``, ``channels``.

Built into an in-memory DuckDB database for one query. ``runs`` (from the manifests),
``events`` (each bundle's ``events.sqlite`` read with Python's sqlite3: DuckDB's sqlite
scanner is an extension it would download) and ``channels`` (Parquet metadata, or the
copied rig file of a version-1 bundle) are small and materialised as tables; ``samples``
is a view over the Parquet files themselves, so a query reads only the columns and row
groups it needs. Only the views a query names are built.

``samples`` is long: one row per (run, sample time, channel). Version-1 bundles and the
polled channels of version-2 bundles are already long in ``scalars.parquet``; the wide
``samples/<device>/part-*.parquet`` tables of version-2 bundles are unpivoted on the fly
(rows where a channel had neither a value nor a status are left out, as in the long file).
"""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from capa.errors import QueryError
from capa.query.store import BundleStore

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["VIEWS", "Bundle", "Inventory", "build_views", "inventory", "views_named"]

VIEWS: Final = ("runs", "events", "samples", "channels")
SEALED: Final = "sealed"

_SAMPLE_COLUMNS: Final = (
    "run_id VARCHAR, t_mono_ns BIGINT, channel VARCHAR, value DOUBLE, raw_value DOUBLE, "
    "unit VARCHAR, status VARCHAR"
)
_EVENT_COLUMNS: Final = (
    "id",
    "t_mono_ns",
    "t_utc",
    "kind",
    "severity",
    "source",
    "message",
    "metadata_json",
)
_CHANNEL_KEYS: Final = (
    "unit",
    "raw_unit",
    "kind",
    "device",
    "field",
    "calibration",
    "plot_group",
)


@dataclass(frozen=True)
class Bundle:
    """One bundle that takes part in the query."""

    run_id: str
    path: str
    manifest: dict[str, Any]

    @property
    def version(self) -> int:
        """``bundle_schema_version`` (1 when absent: the first layout had the field too)."""
        value = self.manifest.get("bundle_schema_version", 1)
        return value if isinstance(value, int) else 1

    @property
    def sealed(self) -> bool:
        """Whether the bundle is sealed (its files never change again)."""
        return self.manifest.get("bundle_status") == SEALED


@dataclass
class Inventory:
    """The bundles a query sees, and what was left out (and why)."""

    store: BundleStore
    bundles: list[Bundle] = field(default_factory=list)
    unsealed_skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def inventory(store: BundleStore, *, include_open: bool = False) -> Inventory:
    """The bundles under ``store``'s root: sealed ones, plus every other with ``include_open``.

    Unreadable manifests and duplicate run ids become warnings, never errors: one broken
    bundle must not hide the rest of a lab's runs.
    """
    inv = Inventory(store)
    seen: dict[str, str] = {}
    for path in store.bundle_dirs():
        try:
            manifest = store.read_manifest(path)
        except QueryError as exc:
            inv.warnings.append(f"skipped: {exc}")
            continue
        run_id = manifest["run_id"]
        if run_id in seen:
            inv.warnings.append(
                f"skipped {store.uri(path)}: run {run_id} is also at {store.uri(seen[run_id])}"
            )
            continue
        seen[run_id] = path
        bundle = Bundle(run_id, path, manifest)
        if not include_open and not bundle.sealed:
            inv.unsealed_skipped.append(run_id)
            continue
        inv.bundles.append(bundle)
    return inv


def views_named(sql: str) -> set[str]:
    """The views ``sql`` may refer to (a word match: building one too many only costs time)."""
    words = set(re.findall(r"[a-z_]+", sql.lower()))
    return {v for v in VIEWS if v in words}


def build_views(con: duckdb.DuckDBPyConnection, inv: Inventory, names: Iterable[str]) -> None:
    """Create the views ``names`` (any of :data:`VIEWS`) over ``inv``'s bundles in ``con``."""
    wanted = set(names)
    if "runs" in wanted:
        _register(con, "runs", _runs_table(inv))
    if "events" in wanted:
        _register(con, "events", _events_table(inv))
    if "samples" in wanted:
        con.execute(f"CREATE VIEW samples AS {_samples_sql(con, inv)}")
    if "channels" in wanted:
        _register(con, "channels", _channels_table(con, inv))


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    # A table copied into the in-memory database: the Arrow object is not kept registered,
    # so the query sees exactly one name per view.
    con.register("_capa_arrow", table)
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _capa_arrow")
    finally:
        con.unregister("_capa_arrow")


# --- runs ---------------------------------------------------------------------------------


def _text(block: Any, key: str) -> str | None:
    if isinstance(block, dict):
        value = block.get(key)
        return None if value is None else str(value)
    return None


def _runs_table(inv: Inventory) -> pa.Table:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for b in inv.bundles:
        m = b.manifest
        integrity = m.get("integrity")
        clock = m.get("clock")
        tags = m.get("tags")
        rows.append(
            {
                "run_id": b.run_id,
                "bundle_schema_version": b.version,
                "run_status": _text(m, "run_status"),
                "bundle_status": _text(m, "bundle_status"),
                "integrity_status": _text(integrity, "status"),
                "exit_reason": _text(m, "exit_reason"),
                "started_utc": _text(m, "started_utc"),
                "ended_utc": _text(m, "ended_utc"),
                "operator_id": _text(m.get("operator"), "id"),
                "operator_name": _text(m.get("operator"), "display_name"),
                "sample_id": _text(m.get("sample"), "id"),
                "sample_material": _text(m.get("sample"), "material"),
                "sample_notes": _text(m.get("sample"), "notes"),
                "procedure_id": _text(m.get("procedure"), "id"),
                "procedure_version": _text(m.get("procedure"), "version"),
                "profile_id": _text(m.get("profile"), "id"),
                "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
                "capa_version": _text(m.get("capa"), "version"),
                "utc_at_zero": _text(clock, "utc_at_zero"),
                "path": inv.store.uri(b.path),
                "manifest": json.dumps(m, ensure_ascii=False),
            }
        )
    text = pa.string()
    schema = pa.schema(
        [
            ("run_id", text),
            ("bundle_schema_version", pa.int32()),
            ("run_status", text),
            ("bundle_status", text),
            ("integrity_status", text),
            ("exit_reason", text),
            ("started_utc", text),
            ("ended_utc", text),
            ("operator_id", text),
            ("operator_name", text),
            ("sample_id", text),
            ("sample_material", text),
            ("sample_notes", text),
            ("procedure_id", text),
            ("procedure_version", text),
            ("profile_id", text),
            ("tags", pa.list_(text)),
            ("capa_version", text),
            ("utc_at_zero", text),
            ("path", text),
            ("manifest", text),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    for name in ("started_utc", "ended_utc", "utc_at_zero"):
        table = _as_timestamps(table, name)
    return table


def _as_timestamps(table: pa.Table, name: str) -> pa.Table:
    """ISO-8601 text → timestamp[us, UTC]; a value that does not parse becomes null."""
    from datetime import datetime

    import pyarrow as pa

    values = []
    for text in table.column(name).to_pylist():
        try:
            values.append(datetime.fromisoformat(text) if text else None)
        except ValueError:
            values.append(None)
    column = pa.array(values, type=pa.timestamp("us", tz="UTC"))
    return table.set_column(table.schema.get_field_index(name), name, column)


# --- events -------------------------------------------------------------------------------


def _events_table(inv: Inventory) -> pa.Table:
    import pyarrow as pa

    columns: dict[str, list[Any]] = {c: [] for c in ("run_id", *_EVENT_COLUMNS)}
    for b in inv.bundles:
        path = inv.store.join(b.path, "events.sqlite")
        if not inv.store.exists(path):
            inv.warnings.append(f"{b.run_id}: no events.sqlite")
            continue
        try:
            with inv.store.sqlite(path, immutable=b.sealed) as conn:
                rows = conn.execute(
                    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events ORDER BY t_mono_ns, id"
                ).fetchall()
        except (sqlite3.Error, OSError) as exc:
            inv.warnings.append(f"{b.run_id}: events.sqlite unreadable ({exc}); events left out")
            continue
        for row in rows:
            columns["run_id"].append(b.run_id)
            for name, value in zip(_EVENT_COLUMNS, row, strict=True):
                columns[name].append(value)
    text = pa.string()
    schema = pa.schema(
        [
            ("run_id", text),
            ("id", pa.int64()),
            ("t_mono_ns", pa.int64()),
            ("t_utc", text),
            ("kind", text),
            ("severity", text),
            ("source", text),
            ("message", text),
            ("metadata_json", text),
        ]
    )
    return pa.Table.from_pydict(columns, schema=schema)


# --- samples ------------------------------------------------------------------------------


def _lit(value: str | None) -> str:
    """A SQL string literal (or NULL)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join(_lit(p) for p in paths) + "]"


@dataclass(frozen=True)
class _WideChannel:
    name: str
    unit: str | None
    has_raw: bool
    has_status: bool
    meta: dict[str, str] = field(compare=False)  # for `channels`; not part of the shape


def _wide_channels(schema: pa.Schema) -> list[_WideChannel]:
    """The value columns of a wide table, with their raw/status siblings and metadata."""
    names = set(schema.names)
    out = []
    for f in schema:
        if f.name == "t_mono_ns" or f.name.endswith((".raw", ".status")):
            continue
        meta = {
            k.decode("utf-8", "replace").removeprefix("capa."): v.decode("utf-8", "replace")
            for k, v in (f.metadata or {}).items()
        }
        if meta.get("role", "value") != "value":
            continue
        out.append(
            _WideChannel(
                name=f.name,
                unit=meta.get("unit") or None,
                has_raw=f"{f.name}.raw" in names,
                has_status=f"{f.name}.status" in names,
                meta=meta,
            )
        )
    return out


def _wide_parts(inv: Inventory, b: Bundle) -> dict[str, list[str]]:
    """``device -> [part paths]`` of a version-2 bundle's ``samples/`` folder."""
    parts: dict[str, list[str]] = {}
    for path in inv.store.glob(b.path, "samples/*/part-*.parquet"):
        device = path.rsplit("/", 2)[-2]
        parts.setdefault(device, []).append(path)
    return parts


def _complete_parts(inv: Inventory, b: Bundle, paths: list[str]) -> tuple[list[str], Any]:
    """The parts that are complete Parquet files, and the schema of the first of them.

    A sealed bundle's parts are all complete; an open bundle's last part has no footer
    until it is closed, and is left out with a warning.
    """
    good: list[str] = []
    schema = None
    for path in paths:
        try:
            s = inv.store.parquet_schema(path)
        except QueryError as exc:
            inv.warnings.append(f"{b.run_id}: left out {exc}")
            continue
        good.append(path)
        schema = schema or s
    return good, schema


def _wide_select(uris: list[str], channels: tuple[_WideChannel, ...]) -> list[str]:
    """One SELECT per channel over every wide table (of any run) with these channels.

    Per channel rather than one UNNEST over all of them: the channel name is then a
    constant in each branch, so a query's ``channel = 'x'`` prunes the other branches at
    planning time and its ``value > v`` reaches the Parquet scan of ``x``'s column (row
    groups whose statistics cannot match are skipped). Each branch reads only its own
    columns, so a query over every channel reads the tables' bytes about once. Tables of
    the same shape in different runs share one scan; ``run_id`` comes from the file name.
    """
    source = (
        f"read_parquet({_path_list(uris)}, filename = true, union_by_name = true) AS s "
        "JOIN _capa_files AS f ON s.filename = f.file"
    )
    out = []
    for ch in channels:
        value = "s." + _ident(ch.name)
        raw = f"CAST(s.{_ident(ch.name + '.raw')} AS DOUBLE)" if ch.has_raw else "NULL::DOUBLE"
        status_col = "s." + _ident(ch.name + ".status")
        status = f"CAST({status_col} AS VARCHAR)" if ch.has_status else "NULL::VARCHAR"
        keep = f"{value} IS NOT NULL" + (f" OR {status_col} IS NOT NULL" if ch.has_status else "")
        out.append(
            f"SELECT f.run_id, s.t_mono_ns, {_lit(ch.name)} AS channel, "
            f"CAST({value} AS DOUBLE) AS value, {raw} AS raw_value, "
            f"{_lit(ch.unit)}::VARCHAR AS unit, {status} AS status FROM {source} WHERE {keep}"
        )
    return out


def _sample_files(inv: Inventory) -> tuple[list[tuple[str, str]], dict[Any, list[tuple[str, str]]]]:
    """``(file, run_id)`` of every ``scalars.parquet``, and of every wide part by shape.

    A sealed bundle's files are complete by definition (its footer is checked only for
    the first part of each device, for the columns); an unsealed bundle's every file is
    checked, and one without a footer yet is left out with a warning.
    """
    scalars: list[tuple[str, str]] = []
    wide: dict[Any, list[tuple[str, str]]] = {}
    for b in inv.bundles:
        path = inv.store.join(b.path, "scalars.parquet")
        if inv.store.exists(path):
            good = [path] if b.sealed else _complete_parts(inv, b, [path])[0]
            scalars.extend((inv.store.uri(p), b.run_id) for p in good)
        elif b.sealed:
            inv.warnings.append(f"{b.run_id}: sealed bundle without scalars.parquet")
        else:
            inv.warnings.append(
                f"{b.run_id}: {b.manifest.get('bundle_status')} bundle has no scalars.parquet "
                "yet; rows still in its in-flight journal are not visible"
            )
        if b.version < 2:
            continue
        for _device, paths in sorted(_wide_parts(inv, b).items()):
            if b.sealed:
                schema = _complete_parts(inv, b, paths[:1])[1]
                good = paths if schema is not None else []
            else:
                good, schema = _complete_parts(inv, b, paths)
            channels = tuple(_wide_channels(schema)) if schema is not None else ()
            if good and channels:
                wide.setdefault(channels, []).extend((inv.store.uri(p), b.run_id) for p in good)
    return scalars, wide


def _samples_sql(con: duckdb.DuckDBPyConnection, inv: Inventory) -> str:
    """The SELECT of the long ``samples`` view over every bundle's sample files."""
    scalars, wide = _sample_files(inv)
    branches: list[str] = []
    if scalars:
        branches.append(
            "SELECT f.run_id, s.t_mono_ns, CAST(s.channel AS VARCHAR) AS channel, "
            "CAST(s.value AS DOUBLE) AS value, CAST(s.raw_value AS DOUBLE) AS raw_value, "
            "CAST(s.unit AS VARCHAR) AS unit, CAST(s.status AS VARCHAR) AS status "
            f"FROM read_parquet({_path_list(f for f, _ in scalars)}, filename = true, "
            "union_by_name = true) AS s JOIN _capa_files AS f ON s.filename = f.file"
        )
    for channels, files in wide.items():
        branches.extend(_wide_select([f for f, _ in files], channels))
    files = scalars + [f for group in wide.values() for f in group]
    _register_files(con, "_capa_files", files)
    if not branches:
        return _empty(_SAMPLE_COLUMNS)
    return " UNION ALL ".join(f"({b})" for b in branches)


def _register_files(con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple[str, str]]) -> None:
    import pyarrow as pa

    table = pa.table(
        {"file": [r[0] for r in rows], "run_id": [r[1] for r in rows]},
        schema=pa.schema([("file", pa.string()), ("run_id", pa.string())]),
    )
    _register(con, name, table)


def _empty(columns: str) -> str:
    cols = ", ".join(
        f"NULL::{typ} AS {name}" for name, typ in (c.strip().split(" ") for c in columns.split(","))
    )
    return f"SELECT {cols} WHERE false"


# --- channels -----------------------------------------------------------------------------


def _channel_row(run_id: str, name: str, location: str, meta: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_id, "channel": name, "location": location}
    for key in _CHANNEL_KEYS:
        value = meta.get(key)
        row[key] = None if value in (None, "") else str(value)
    return row


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _rig_channels(inv: Inventory, b: Bundle) -> dict[str, dict[str, Any]]:
    """Channel metadata from the rig file copied into a version-1 bundle's ``config/``."""
    out: dict[str, dict[str, Any]] = {}
    for path in inv.store.glob(b.path, "config/*.toml"):
        try:
            doc = tomllib.loads(inv.store.read_bytes(path).decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # not every config file is a rig file; the channels then lack metadata
        for ch in _list(doc, "channels"):
            if not isinstance(ch, dict) or not isinstance(ch.get("name"), str):
                continue
            found = ch.get("source")
            source: dict[str, Any] = found if isinstance(found, dict) else {}
            calibration = ch.get("calibration")
            calibrated = ch.get("derived_unit")  # the hardware file's unit is then the raw one
            out[ch["name"]] = {
                "unit": calibrated or ch.get("unit"),
                "raw_unit": ch.get("unit") if calibrated else None,
                "kind": ch.get("kind"),
                "device": source.get("device"),
                "field": source.get("field"),
                "plot_group": ch.get("plot_group"),
                "calibration": (
                    json.dumps(calibration, sort_keys=True) if calibration is not None else None
                ),
            }
        for ch in _list(doc, "derived"):
            if isinstance(ch, dict) and isinstance(ch.get("name"), str):
                out[ch["name"]] = {
                    "unit": ch.get("unit"),
                    "kind": ch.get("kind") or "derived",
                    "device": "derived",  # as the version-2 metadata names it
                    "field": None,
                    "plot_group": ch.get("plot_group"),
                    "calibration": None,
                }
    return out


def _channels_table(con: duckdb.DuckDBPyConnection, inv: Inventory) -> pa.Table:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for b in inv.bundles:
        scalars = inv.store.join(b.path, "scalars.parquet")
        if inv.store.exists(scalars):
            rows.extend(_scalar_channels(con, inv, b, scalars))
        if b.version < 2:
            continue
        for device, paths in sorted(_wide_parts(inv, b).items()):
            _, schema = _complete_parts(inv, b, paths[:1])
            for ch in _wide_channels(schema) if schema is not None else []:
                rows.append(_channel_row(b.run_id, ch.name, f"samples/{device}", ch.meta))
    text = pa.string()
    schema = pa.schema(
        [("run_id", text), ("channel", text), ("location", text)]
        + [(k, text) for k in _CHANNEL_KEYS]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _scalar_channels(
    con: duckdb.DuckDBPyConnection, inv: Inventory, b: Bundle, path: str
) -> list[dict[str, Any]]:
    """Channels of one ``scalars.parquet``.

    Its ``capa.channels`` metadata (version 2), else the distinct channels in the file
    joined with the copied rig file (version 1).
    """
    try:
        schema = inv.store.parquet_schema(path)
    except QueryError as exc:
        inv.warnings.append(f"{b.run_id}: left out {exc}")
        return []
    described = (schema.metadata or {}).get(b"capa.channels")
    if described:
        try:
            table = json.loads(described)
        except ValueError:
            inv.warnings.append(f"{b.run_id}: scalars.parquet capa.channels is not JSON")
        else:
            if isinstance(table, dict):
                return [
                    _channel_row(b.run_id, name, "scalars", meta if isinstance(meta, dict) else {})
                    for name, meta in sorted(table.items())
                ]
    rig = _rig_channels(inv, b)
    found = con.execute(
        "SELECT CAST(channel AS VARCHAR), any_value(CAST(unit AS VARCHAR)) "
        f"FROM read_parquet({_lit(inv.store.uri(path))}) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    rows = []
    for name, unit in found:
        meta = dict(rig.get(name, {}))
        meta["unit"] = unit or meta.get("unit")
        rows.append(_channel_row(b.run_id, name, "scalars", meta))
    return rows
