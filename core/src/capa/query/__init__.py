"""SQL across run bundles: ``capa catalog query`` and its Python form :func:`query`.

One read-only DuckDB database in memory per query, with four views over every bundle of a
runs root (or of an S3-compatible store): ``runs``, ``events``, ``samples`` (long) and
``channels``. DuckDB comes with the ``capa[query]`` extra and is imported only here.

What "read-only" means, enforced before the query runs:

- exactly one statement, and it must be a ``SELECT`` (``WITH``, ``DESCRIBE``, ``SUMMARIZE``
  and ``SHOW`` are SELECTs to DuckDB) or an ``EXPLAIN``; ``COPY``, ``ATTACH``, ``INSTALL``,
  ``LOAD``, ``SET``, ``CREATE``, ``PRAGMA``, ``CALL`` ... are refused;
- DuckDB's file access is limited to the runs root (``allowed_directories`` with
  ``enable_external_access = false``), extensions are never installed or auto-loaded, and
  the configuration is locked so the query cannot undo any of that;
- ``events.sqlite`` files are opened by capa, read-only (``immutable=1`` for sealed
  bundles, so not even a ``-shm`` file appears in the bundle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from capa.errors import QueryError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["QueryResult", "check_statement", "query"]

_ALLOWED: Final = ("SELECT", "EXPLAIN")
INSTALL_HINT: Final = "capa catalog query needs DuckDB: pip install 'capa[query]'"


@dataclass(frozen=True)
class QueryResult:
    """What a query returned, and which bundles it saw.

    Attributes:
        table: the result rows.
        bundles: number of bundles the views cover.
        unsealed_skipped: run ids left out because they are not sealed (``include_open``).
        warnings: bundles or files left out, and why.
    """

    table: pa.Table
    bundles: int
    unsealed_skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _connect() -> duckdb.DuckDBPyConnection:
    try:
        import duckdb
    except ImportError:
        raise QueryError(INSTALL_HINT) from None
    # Extensions would be fetched from the internet; a lab PC may have none, and a query
    # must never load code it was not shipped with.
    return duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise :class:`QueryError` unless ``sql`` is one SELECT or EXPLAIN statement."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise QueryError(f"SQL: give exactly one statement (got {len(statements)})")
    kind = statements[0].type.name
    if kind not in _ALLOWED:
        raise QueryError(f"SQL: {kind} statements are refused; queries are read-only (SELECT only)")


def _lock_down(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> None:
    """Restrict file access to ``allowed`` directories and lock the configuration."""
    if allowed:
        quoted = ", ".join("'" + a.replace("'", "''") + "'" for a in allowed)
        con.execute(f"SET allowed_directories = [{quoted}]")
    con.execute("SET TimeZone = 'UTC'")  # timestamps print in UTC, whatever the host's zone
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _arrow(rel: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation's rows as an Arrow table (DuckDB 2 renamed ``fetch_arrow_table``)."""
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def query(
    sql: str,
    runs_root: str | Path,
    *,
    include_open: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> QueryResult:
    """Run one read-only SQL statement over the bundles under ``runs_root``.

    Args:
        sql: a SELECT over the views ``runs``, ``events``, ``samples``, ``channels``.
        runs_root: a runs root directory, or ``s3://bucket/prefix`` (needs ``capa[s3]``);
            either may contain ``*`` (``s3://lab/rigs/*/runs``).
        include_open: also query bundles that are not sealed (open, finalizing, or
            verification_failed); by default only sealed bundles are seen.
        storage_options: options for the fsspec filesystem of a URL (``endpoint_url``,
            ``key``, ``secret``, ``profile``, ...); by default the AWS environment.

    Raises:
        QueryError: DuckDB missing, a refused or invalid statement, an unreadable store.
    """
    con = _connect()  # first: a missing DuckDB is one clear line naming the extra
    import duckdb

    from capa.query.store import BundleStore
    from capa.query.views import build_views, inventory, views_named

    try:
        check_statement(con, sql)
        store = BundleStore(runs_root, storage_options)
        inv = inventory(store, include_open=include_open)
        if store.fs is not None:
            con.register_filesystem(store.fs)
        try:
            build_views(con, inv, views_named(sql))
            allowed = [store.uri(store.base).rstrip("/") + "/"]
            _lock_down(con, allowed)
            table = _arrow(con.sql(sql))
        except duckdb.Error as exc:
            raise QueryError(f"SQL: {_first_line(exc)}") from exc
    finally:
        con.close()
    return QueryResult(table, len(inv.bundles), inv.unsealed_skipped, inv.warnings)
