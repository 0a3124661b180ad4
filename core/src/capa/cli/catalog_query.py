"""``capa catalog query "SQL"``: one read-only SQL statement over every bundle of a runs root.

Views: ``runs``, ``events``, ``samples`` (long), ``channels`` (see :mod:`capa.query`).
Only sealed bundles are queried unless ``--include-open``. The runs root may be an
``s3://bucket/prefix`` URL (``capa[s3]``); credentials come from the standard AWS
environment variables or profile, the endpoint of an S3-compatible server from
``--endpoint-url`` or ``$AWS_ENDPOINT_URL``.

Exit codes (seed 001): 0 the query ran (also with no rows), 2 DuckDB not installed, the SQL
is invalid or not a read-only SELECT, or the runs root cannot be read; 64 usage.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["query"]


@click.command("query")
@click.argument("sql")
@click.option(
    "--runs-root",
    metavar="PATH|URL",
    default=None,
    help="Runs root directory or s3://bucket/prefix (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.option(
    "--include-open",
    is_flag=True,
    help="Also query bundles that are not sealed (open, finalizing, verification_failed).",
)
@click.option(
    "--endpoint-url",
    metavar="URL",
    default=None,
    help="S3-compatible endpoint for an s3:// runs root (MinIO, Ceph; default: AWS or "
    "$AWS_ENDPOINT_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
def query(  # click passes every option by keyword
    *,
    sql: str,
    runs_root: str | None,
    include_open: bool,
    endpoint_url: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    r"""Run one read-only SQL statement (DuckDB) over the bundles of a runs root.

    \b
    Views:
      runs      one row per bundle (manifest fields, tags, path, manifest JSON)
      events    every bundle's events.sqlite, with run_id
      samples   every sample, long: run_id, t_mono_ns, channel, value, raw_value,
                unit, status (v1 scalars.parquet and v2 wide samples/ alike)
      channels  channel metadata per run (unit, kind, device, calibration, plot_group)

    \b
    Every run of sample S-12 where furnace_t exceeded 600 degC:
      capa catalog query "SELECT DISTINCT run_id FROM runs JOIN samples USING (run_id)
        WHERE sample_id = 'S-12' AND channel = 'furnace_t' AND value > 600"
    """
    if as_json and as_csv:
        raise click.UsageError("give at most one of --json and --csv")
    from capa.query import query as run_query
    from capa.query.store import is_url

    root: str = runs_root if runs_root and is_url(runs_root) else ""
    if not root:
        from pathlib import Path

        from capa.bundle.paths import resolve_runs_root

        root = str(resolve_runs_root(Path(runs_root) if runs_root else None))
    options = {"endpoint_url": endpoint_url} if endpoint_url else None
    result = run_query(sql, root, include_open=include_open, storage_options=options)
    for warning in result.warnings:
        click.echo(f"capa: warning: {warning}", err=True)
    if as_json:
        rows = [{k: _plain(v) for k, v in r.items()} for r in result.table.to_pylist()]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif as_csv:
        _write_csv(result.table)
    else:
        _print_table(result.table)
    skipped = len(result.unsealed_skipped)
    note = f"; {skipped} unsealed bundle(s) not queried (--include-open)" if skipped else ""
    click.echo(
        f"{result.table.num_rows} row(s) from {result.bundles} bundle(s) in {root}{note}",
        err=True,
    )


def _plain(value: Any) -> Any:
    """A JSON-ready form of one cell (ISO times, floats, None for NaN, nested lists)."""
    out = value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        out = value.isoformat()
    elif isinstance(value, dt.timedelta):
        out = value.total_seconds()
    elif isinstance(value, Decimal):
        out = float(value)
    elif isinstance(value, float) and not math.isfinite(value):
        out = None  # JSON has no NaN or infinity
    elif isinstance(value, bytes):
        out = value.hex()
    elif isinstance(value, list | tuple):
        out = [_plain(v) for v in value]
    elif isinstance(value, dict):
        out = {str(k): _plain(v) for k, v in value.items()}
    return out


def _cell(value: Any) -> str:
    """One cell as text for CSV and the table (lists and maps as JSON)."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write_csv(table: pa.Table) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(table.schema.names)
    for batch in table.to_batches():
        for row in batch.to_pylist():
            writer.writerow([_cell(v) for v in row.values()])


def _print_table(table: pa.Table) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in table.schema.names:
        out.add_column(name, overflow="fold")
    for row in table.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    # Piped output is not cut to 80 columns: rows stay whole for grep and logs.
    width = None if sys.stdout.isatty() else 100_000
    Console(file=sys.stdout, width=width, no_color=True).print(out)
