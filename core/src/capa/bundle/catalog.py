"""``runs.sqlite``: the catalog of a runs root — an index, rebuildable from manifests.

One row per run, inserted when the bundle opens (so a crashed run is visible) and updated
at finalize. Nothing in it is authoritative: ``capa catalog rebuild`` recreates every row
from the bundles' ``manifest.json`` files. The database runs in WAL mode so readers (``capa
catalog list`` in another terminal) never block, and are never blocked by, a run writing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from capa.bundle.manifest import Manifest, read_manifest
from capa.bundle.paths import CATALOG_FILE, MANIFEST_FILE
from capa.errors import BundleError

__all__ = ["Catalog", "CatalogRow", "RebuildReport"]

_SCHEMA_VERSION: Final = 1
_DDL: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    path              TEXT NOT NULL,
    started_utc       TEXT,
    ended_utc         TEXT,
    operator          TEXT,
    sample            TEXT,
    procedure_id      TEXT,
    procedure_version TEXT,
    run_status        TEXT NOT NULL,
    bundle_status     TEXT NOT NULL,
    integrity_status  TEXT NOT NULL,
    capa_version      TEXT,
    tags_json         TEXT NOT NULL DEFAULT '[]',
    summary_json      TEXT NOT NULL DEFAULT '{}',
    indexed_utc       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_runs_started ON runs (started_utc);
CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS: Final = (
    "run_id",
    "path",
    "started_utc",
    "ended_utc",
    "operator",
    "sample",
    "procedure_id",
    "procedure_version",
    "run_status",
    "bundle_status",
    "integrity_status",
    "capa_version",
    "tags_json",
    "summary_json",
    "indexed_utc",
)
_UPSERT: Final = (
    f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


@dataclass(frozen=True)
class CatalogRow:
    """One run as the catalog knows it (``path`` is relative to the runs root)."""

    run_id: str
    path: str
    started_utc: str | None
    ended_utc: str | None
    operator: str | None
    sample: str | None
    procedure_id: str | None
    procedure_version: str | None
    run_status: str
    bundle_status: str
    integrity_status: str
    capa_version: str | None
    tags: list[str]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        return asdict(self)


@dataclass(frozen=True)
class RebuildReport:
    """Outcome of :meth:`Catalog.rebuild`: runs indexed and directories skipped (why)."""

    indexed: list[str]
    skipped: dict[str, str]


def _row_values(manifest: Manifest, rel_path: str) -> tuple[Any, ...]:
    operator = manifest.operator or {}
    sample = manifest.sample or {}
    procedure = manifest.procedure or {}
    scalars = manifest.counts.get("scalars", {})
    summary = {
        "exit_reason": manifest.exit_reason,
        "rows": scalars.get("rows") if isinstance(scalars, dict) else None,
        "events": manifest.counts.get("events"),
        "finalize_warnings": len(manifest.custom.get("finalize_warnings", []) or []),
    }
    return (
        manifest.run_id,
        rel_path,
        manifest.started_utc,
        manifest.ended_utc,
        operator.get("id"),
        sample.get("id"),
        procedure.get("id"),
        procedure.get("version"),
        manifest.run_status.value,
        manifest.bundle_status.value,
        manifest.integrity.status.value,
        manifest.capa.get("version"),
        json.dumps(manifest.tags),
        json.dumps(summary, default=str),
        datetime.now(UTC).isoformat(timespec="microseconds"),
    )


class Catalog:
    """The ``runs.sqlite`` of one runs root.

    Every method opens its own short-lived connection, so a catalog object can be shared
    between threads and a long-running process never holds the database open.

    Args:
        runs_root: the directory holding the bundles and ``runs.sqlite``.
        create: create the database if it does not exist (readers pass ``False`` and get
            :class:`BundleError` for a missing catalog).
    """

    def __init__(self, runs_root: Path, *, create: bool = True) -> None:
        self.runs_root = runs_root
        self.path = runs_root / CATALOG_FILE
        if not create and not self.path.exists():
            raise BundleError(f"no catalog at {self.path} (run `capa catalog rebuild`)")
        if create:
            runs_root.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(_DDL)
                conn.execute(
                    "INSERT OR IGNORE INTO catalog_meta VALUES ('schema_version', ?)",
                    (str(_SCHEMA_VERSION),),
                )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise BundleError(f"cannot open catalog {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        except sqlite3.DatabaseError as exc:
            raise BundleError(f"catalog {self.path} is unusable: {exc}") from exc
        finally:
            conn.close()

    def _rel(self, bundle: Path) -> str:
        try:
            return bundle.resolve().relative_to(self.runs_root.resolve()).as_posix()
        except ValueError:
            return str(bundle.resolve())

    def upsert(self, manifest: Manifest, bundle: Path) -> None:
        """Insert or replace the row of ``manifest``'s run (bundle at ``bundle``)."""
        with self._connect() as conn:
            conn.execute(_UPSERT, _row_values(manifest, self._rel(bundle)))

    def get(self, run_id: str) -> CatalogRow | None:
        """The row of ``run_id``, or ``None``."""
        rows = self._query("WHERE run_id = ?", (run_id,))
        return rows[0] if rows else None

    def bundle_path(self, row: CatalogRow) -> Path:
        """Absolute bundle directory of a row."""
        path = Path(row.path)
        return path if path.is_absolute() else self.runs_root / path

    def runs(
        self,
        *,
        run_status: str | None = None,
        bundle_status: str | None = None,
        since: datetime | None = None,
    ) -> list[CatalogRow]:
        """Runs matching the filters, oldest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if run_status:
            clauses.append("run_status = ?")
            params.append(run_status)
        if bundle_status:
            clauses.append("bundle_status = ?")
            params.append(bundle_status)
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            clauses.append("started_utc >= ?")
            params.append(moment.astimezone(UTC).isoformat(timespec="microseconds"))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._query(where, tuple(params))

    def _query(self, where: str, params: tuple[Any, ...]) -> list[CatalogRow]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs {where} ORDER BY started_utc, run_id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        out = []
        for row in rows:
            data = dict(zip(_COLUMNS, row, strict=True))
            data.pop("indexed_utc")
            data["tags"] = json.loads(data.pop("tags_json") or "[]")
            data["summary"] = json.loads(data.pop("summary_json") or "{}")
            out.append(CatalogRow(**data))
        return out

    def rebuild(self) -> RebuildReport:
        """Replace every row with what the manifests under the runs root say."""
        indexed: list[str] = []
        skipped: dict[str, str] = {}
        rows: list[tuple[Any, ...]] = []
        for manifest_path in sorted(self.runs_root.glob(f"*/{MANIFEST_FILE}")):
            bundle = manifest_path.parent
            try:
                manifest = read_manifest(bundle)
            except BundleError as exc:
                skipped[bundle.name] = str(exc)
                continue
            rows.append(_row_values(manifest, self._rel(bundle)))
            indexed.append(manifest.run_id)
        with self._connect() as conn:
            conn.execute("DELETE FROM runs")
            conn.executemany(_UPSERT, rows)
        return RebuildReport(indexed, skipped)
