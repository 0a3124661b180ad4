"""``runs.sqlite``: the catalog of a runs root — an index, rebuildable from manifests.

One row per run, inserted when the bundle opens (so a crashed run is visible) and updated
at finalize. Nothing in it is authoritative: ``capa catalog rebuild`` recreates every row
from the bundles' ``manifest.json`` files — and the ``bundle_digest`` of each sealed run
from the runs root's seal journal (``seals.jsonl``), never from the bundle, so a rebuild
cannot launder a tampered bundle. A catalog that is not a readable SQLite database (or
has the wrong schema) is moved aside as ``runs.sqlite.corrupt-<UTC time>`` by rebuild.
A row whose JSON cells cannot be read is listed with a warning, never an error. The
database runs in WAL mode so readers (``capa catalog list`` in another terminal) never
block, and are never blocked by, a run writing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from capa.bundle.manifest import Manifest, read_manifest
from capa.bundle.paths import CATALOG_FILE, MANIFEST_FILE
from capa.errors import BundleError

__all__ = ["Catalog", "CatalogRow", "RebuildReport", "open_for_rebuild"]

_SCHEMA_VERSION: Final = 2
"""2 added ``bundle_digest`` (older catalogs gain the column when opened)."""
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
    indexed_utc       TEXT NOT NULL,
    bundle_digest     TEXT
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
    "bundle_digest",
)
_REQUIRED: Final = ("run_id", "path", "run_status", "bundle_status", "integrity_status")
# A row is replaced whole, except that a seal digest once recorded is never overwritten.
_UPSERT: Final = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("run_id", "bundle_digest"))
    + ", bundle_digest = COALESCE(runs.bundle_digest, excluded.bundle_digest)"
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
    bundle_digest: str | None = None
    problems: tuple[str, ...] = ()
    """Cells that could not be read (shown as warnings; the rest of the row is listed)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        return asdict(self)


@dataclass(frozen=True)
class RebuildReport:
    """Outcome of :meth:`Catalog.rebuild`.

    Attributes:
        indexed: run ids indexed.
        skipped: bundle directories skipped, with why.
        moved_aside: where an unreadable catalog was moved, if one was.
        journal_problems: unreadable lines of the seal journal.
    """

    indexed: list[str]
    skipped: dict[str, str]
    moved_aside: Path | None = None
    journal_problems: list[str] = field(default_factory=list)


def _row_values(manifest: Manifest, rel_path: str, digest: str | None) -> tuple[Any, ...]:
    operator = manifest.operator or {}
    sample = manifest.sample or {}
    procedure = manifest.procedure or {}
    scalars = manifest.counts.get("scalars", {})
    summary = {
        "exit_reason": manifest.exit_reason,
        # What `capa catalog list --operator/--text` search beyond the indexed columns.
        "operator_name": operator.get("display_name"),
        "notes": sample.get("notes"),
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
        digest,
    )


def _fold(value: Any) -> str:
    return value.casefold() if isinstance(value, str) else ""


def _matches(
    row: CatalogRow,
    *,
    operator: str | None,
    sample: str | None,
    tags: Sequence[str],
    procedure: str | None,
    text: str | None,
) -> bool:
    """Whether ``row`` passes the filters of :meth:`Catalog.runs` that are matched in Python."""
    if operator and _fold(operator) not in (
        _fold(row.operator),
        _fold(row.summary.get("operator_name")),
    ):
        return False
    if sample and _fold(sample) != _fold(row.sample):
        return False
    if any(tag not in row.tags for tag in tags):
        return False
    if procedure and procedure != row.procedure_id:
        return False
    if text:
        needle = _fold(text)
        haystack = (row.run_id, row.sample, row.summary.get("notes"))
        if not any(needle in _fold(h) for h in haystack):
            return False
    return True


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a version-1 catalog (no ``bundle_digest``) up to this schema, in place."""
    names = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if names and "bundle_digest" not in names:
        conn.execute("ALTER TABLE runs ADD COLUMN bundle_digest TEXT")
        conn.execute(
            "INSERT OR REPLACE INTO catalog_meta VALUES ('schema_version', ?)",
            (str(_SCHEMA_VERSION),),
        )


def _json_cell(data: dict[str, Any], key: str, default: Any, problems: list[str]) -> Any:
    raw = data.pop(key)
    if raw is None or raw == "":
        return default
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        problems.append(f"{key} is not JSON: {str(raw)[:40]!r}")
        return default
    if not isinstance(value, type(default)):
        problems.append(f"{key} is not a JSON {type(default).__name__}")
        return default
    return value


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
                _migrate(conn)
                yield conn
        except sqlite3.DatabaseError as exc:
            raise BundleError(
                f"catalog {self.path} is unusable: {exc} (`capa catalog rebuild` replaces it, "
                "keeping the old file)"
            ) from exc
        finally:
            conn.close()

    def _rel(self, bundle: Path) -> str:
        try:
            return bundle.resolve().relative_to(self.runs_root.resolve()).as_posix()
        except ValueError:
            return str(bundle.resolve())

    def upsert(self, manifest: Manifest, bundle: Path) -> None:
        """Insert or replace the row of ``manifest``'s run (bundle at ``bundle``).

        The row's ``bundle_digest`` comes from the seal journal (the first seal of the
        run), and a digest already in the row is kept.
        """
        from capa.bundle.seal import read_seals

        seals = read_seals(self.runs_root)[0].get(manifest.run_id)
        digest = seals[0].bundle_digest if seals else None
        with self._connect() as conn:
            conn.execute(_UPSERT, _row_values(manifest, self._rel(bundle), digest))

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
        operator: str | None = None,
        sample: str | None = None,
        tags: Sequence[str] = (),
        procedure: str | None = None,
        text: str | None = None,
    ) -> list[CatalogRow]:
        """Runs matching every filter given, oldest first.

        Args:
            run_status: exact run status.
            bundle_status: exact bundle status.
            since: started at or after this time (naive = UTC).
            operator: operator id or display name (exact, case-insensitive). Rows indexed
                by a capa without display names and notes in the catalog get them from
                ``capa catalog rebuild``.
            sample: sample id (exact, case-insensitive).
            tags: every one of these tags (exact).
            procedure: procedure id (exact).
            text: case-insensitive substring of the run id, sample id or sample notes
                (notes as for ``operator``).
        """
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
        rows = self._query(where, tuple(params))
        # The rest is matched here, not in SQL: case-folding is Unicode-correct, and a row
        # whose JSON cells are unreadable just does not match (SQLite's JSON functions
        # would fail the whole listing on it).
        return [
            r
            for r in rows
            if _matches(
                r, operator=operator, sample=sample, tags=tags, procedure=procedure, text=text
            )
        ]

    def _query(self, where: str, params: tuple[Any, ...]) -> list[CatalogRow]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs {where} ORDER BY started_utc, run_id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        out = []
        for row in rows:
            data = dict(zip(_COLUMNS, row, strict=True))
            data.pop("indexed_utc")
            problems: list[str] = []
            data["tags"] = _json_cell(data, "tags_json", [], problems)
            data["summary"] = _json_cell(data, "summary_json", {}, problems)
            for key, value in list(data.items()):
                if key in ("tags", "summary") or isinstance(value, str):
                    continue
                if value is None and key not in _REQUIRED:
                    continue
                problems.append(f"{key} is not text: {value!r}"[:80])
                data[key] = "" if value is None else str(value)
            out.append(CatalogRow(**data, problems=tuple(problems)))
        return out

    def rebuild(self) -> RebuildReport:
        """Replace every row with what the manifests under the runs root say.

        Digests come from the seal journal only. Call :func:`open_for_rebuild` first to
        get a catalog even when ``runs.sqlite`` is unreadable.
        """
        from capa.bundle.seal import read_seals

        seals, journal_problems = read_seals(self.runs_root)
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
            sealed = seals.get(manifest.run_id)
            digest = sealed[0].bundle_digest if sealed else None
            rows.append(_row_values(manifest, self._rel(bundle), digest))
            indexed.append(manifest.run_id)
        with self._connect() as conn:
            conn.execute("DELETE FROM runs")
            conn.executemany(_UPSERT, rows)
        return RebuildReport(indexed, skipped, journal_problems=journal_problems)


def open_for_rebuild(runs_root: Path) -> tuple[Catalog, Path | None]:
    """The catalog of ``runs_root``, moving an unusable ``runs.sqlite`` aside first.

    "Unusable" is anything SQLite cannot open, read or check (truncated file, garbage
    header, zeroed pages, ``quick_check`` errors) or a ``runs`` table whose columns are not
    capa's. The old file (and its ``-wal``/``-shm``) is renamed to
    ``runs.sqlite.corrupt-<UTC time>`` and kept; returns the catalog and that path.
    """
    path = runs_root / CATALOG_FILE
    problem = _unusable(path) if path.exists() else None
    moved: Path | None = None
    if problem is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        moved = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.rename(moved)
        for side in ("-wal", "-shm"):
            extra = path.with_name(path.name + side)
            if extra.exists():
                extra.rename(moved.with_name(moved.name + side))
    return Catalog(runs_root), moved


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot serve as a catalog, or ``None`` if it can."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            return f"quick_check: {check[0][0]}"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    expected = set(_COLUMNS) - {"bundle_digest"}
    if columns and not expected <= set(columns):
        return f"runs table has columns {columns}, not capa's"
    return None
