"""``capa catalog``: list, verify and rebuild the run catalog (``runs.sqlite``) of a runs root.

Exit codes (seed 001): ``list`` 0 always; ``verify`` 0 every run ok, 2 catalog error (no
catalog, run not in it, bundle missing or not sealed), 3 any mismatch (the offending files
are listed), 64 when neither RUN_ID nor ``--all`` is given; ``rebuild`` 0.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from capa.cli.output import echo_json, echo_table

__all__ = ["catalog"]

EXIT_USAGE = 64  # EX_USAGE from sysexits.h
EXIT_CATALOG_ERROR = 2
EXIT_MISMATCH = 3

# Kept as literals so `capa catalog --help` does not import capa.bundle (pyarrow, pydantic);
# a test checks they equal the manifest enums.
RUN_STATUSES = ("running", "completed", "aborted", "crashed")
BUNDLE_STATUSES = ("open", "finalizing", "sealed", "verification_failed")

_runs_root_option = click.option(
    "--runs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Runs root (default: $CAPA_RUNS_ROOT, else ./runs).",
)


@click.group()
def catalog() -> None:
    """The index of the runs in a runs root (runs.sqlite), rebuildable from manifests."""


def _parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or date-time (e.g. 2026-05-24 or 2026-05-24T14:00)"
        ) from None


@catalog.command("list")
@_runs_root_option
@click.option("--run-status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option(
    "--bundle-status", type=click.Choice(BUNDLE_STATUSES), help="Only bundles in this state."
)
@click.option(
    "--since",
    callback=_parse_since,
    metavar="DATETIME",
    help="Only runs started at or after this ISO date/time (UTC unless an offset is given).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_runs(
    runs_root: Path | None,
    run_status: str | None,
    bundle_status: str | None,
    since: datetime | None,
    as_json: bool,
) -> None:
    """List the runs in the catalog, oldest first. Always exits 0."""
    from capa.bundle.catalog import Catalog, CatalogRow
    from capa.bundle.paths import resolve_runs_root
    from capa.errors import BundleError

    root = resolve_runs_root(runs_root)
    rows: list[CatalogRow] = []
    try:
        cat = Catalog(root, create=False)
        rows = cat.runs(run_status=run_status, bundle_status=bundle_status, since=since)
    except BundleError as exc:
        click.echo(f"capa: warning: {exc}", err=True)
        cat = None
    if as_json:
        echo_json(
            [
                {**r.to_dict(), "bundle": str(cat.bundle_path(r) if cat else root / r.path)}
                for r in rows
            ]
        )
        return
    if not rows:
        click.echo(f"no runs in {root}")
        return
    echo_table(
        ["run_id", "started_utc", "run", "bundle", "integrity", "operator", "sample", "procedure"],
        [
            (
                r.run_id,
                (r.started_utc or "-")[:19],
                r.run_status,
                r.bundle_status,
                r.integrity_status,
                r.operator or "-",
                r.sample or "-",
                r.procedure_id or "-",
            )
            for r in rows
        ],
    )


@catalog.command("verify")
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Verify every run in the catalog.")
@_runs_root_option
@click.pass_context
def verify(ctx: click.Context, run_id: str | None, all_runs: bool, runs_root: Path | None) -> None:
    """Re-hash sealed bundles and compare them with their manifest.sha256."""
    if bool(run_id) == all_runs:
        click.echo("capa: error: give either RUN_ID or --all (not both)", err=True)
        click.echo(ctx.get_usage(), err=True)
        ctx.exit(EXIT_USAGE)
    from capa.bundle.catalog import Catalog
    from capa.bundle.integrity import verify_bundle
    from capa.bundle.manifest import IntegrityStatus
    from capa.bundle.paths import resolve_runs_root
    from capa.errors import BundleError

    cat = Catalog(resolve_runs_root(runs_root), create=False)
    if run_id:
        row = cat.get(run_id)
        if row is None:
            raise BundleError(
                f"run {run_id!r} is not in the catalog {cat.path} (try `capa catalog rebuild`)"
            )
        rows = [row]
    else:
        rows = cat.runs()
    worst = 0
    for row in rows:
        bundle = cat.bundle_path(row)
        if not bundle.is_dir():
            click.echo(f"{row.run_id}  error: bundle directory {bundle} is missing")
            worst = max(worst, EXIT_CATALOG_ERROR)
            continue
        result = verify_bundle(bundle)
        if result.status is IntegrityStatus.UNKNOWN:
            click.echo(f"{row.run_id}  not sealed: run `capa finalize {row.run_id}` first")
            worst = max(worst, EXIT_CATALOG_ERROR)
        elif result.ok:
            click.echo(f"{row.run_id}  ok ({result.checked} files)")
        else:
            click.echo(f"{row.run_id}  {result.describe()}")
            worst = EXIT_MISMATCH
    if not rows:
        click.echo(f"no runs in {cat.path}")
    ctx.exit(worst)


@catalog.command("rebuild")
@_runs_root_option
def rebuild(runs_root: Path | None) -> None:
    """Recreate runs.sqlite from the manifest.json of every bundle in the runs root."""
    from capa.bundle.catalog import Catalog
    from capa.bundle.paths import resolve_runs_root
    from capa.errors import BundleError

    root = resolve_runs_root(runs_root)
    if not root.is_dir():
        raise BundleError(f"runs root {root} does not exist")
    report = Catalog(root).rebuild()
    click.echo(f"indexed {len(report.indexed)} run(s) into {root / 'runs.sqlite'}")
    for name, why in sorted(report.skipped.items()):
        click.echo(f"skipped {name}: {why}")
