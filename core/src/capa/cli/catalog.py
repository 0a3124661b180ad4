"""``capa catalog``: list, verify and rebuild the run catalog (``runs.sqlite``) of a runs root.

Exit codes (seed 001): ``list`` 0 always (unreadable rows are shown with a warning);
``verify`` 0 every run ok, 2 catalog error (no catalog, run not in it, bundle missing or
never sealed, no public key for ``--require-signature``), 3 any mismatch (the offending
files are listed; also a bundle finalize marked ``verification_failed`` (an accounting
mismatch, rows lost), with its reasons; a bundle whose ``manifest.sha256`` is not the one
the seal journal or the catalog recorded at seal, or lacks a valid signature with
``--require-signature``),
64 when neither RUN_ID nor ``--all`` is given; ``rebuild`` 0; ``keygen`` 0, 2 if the key
files exist or ``cryptography`` is missing. ``query`` (SQL across bundles) lives in
:mod:`capa.cli.catalog_query`: 0, or 2 for an invalid or refused statement.
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
@click.option("--operator", metavar="ID|NAME", help="Only runs of this operator (id or name).")
@click.option("--sample", metavar="ID", help="Only runs of this sample id.")
@click.option(
    "--tag", "tags", multiple=True, metavar="TAG", help="Only runs with this tag (repeatable: all)."
)
@click.option("--procedure", metavar="ID", help="Only runs of this procedure id.")
@click.option(
    "--text", metavar="TEXT", help="Only runs whose run id, sample id or sample notes contain TEXT."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_runs(  # click passes every option by keyword
    *,
    runs_root: Path | None,
    run_status: str | None,
    bundle_status: str | None,
    since: datetime | None,
    operator: str | None,
    sample: str | None,
    tags: tuple[str, ...],
    procedure: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """List the runs in the catalog, oldest first. Always exits 0.

    Filters combine (AND). --operator and --sample ignore case; --text is a
    case-insensitive substring. For questions about the data itself, see
    `capa catalog query`.
    """
    from capa.bundle.catalog import Catalog, CatalogRow
    from capa.bundle.paths import resolve_runs_root
    from capa.errors import BundleError

    root = resolve_runs_root(runs_root)
    rows: list[CatalogRow] = []
    try:
        cat = Catalog(root, create=False)
        rows = cat.runs(
            run_status=run_status,
            bundle_status=bundle_status,
            since=since,
            operator=operator,
            sample=sample,
            tags=tags,
            procedure=procedure,
            text=text,
        )
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
    for r in rows:
        for problem in r.problems:
            click.echo(f"capa: warning: catalog row {r.run_id}: {problem}", err=True)
    if not rows:
        filtered = any((run_status, bundle_status, since, operator, sample, tags, procedure, text))
        click.echo(f"no runs in {root}" + (" match the filters" if filtered else ""))
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
@click.option(
    "--require-signature",
    is_flag=True,
    help="Also require a valid rig signature over each bundle digest (exit 3 if missing).",
)
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Rig public key (PEM) for signatures (default: $CAPA_SEAL_PUBLIC_KEY).",
)
@_runs_root_option
@click.pass_context
def verify(  # click passes every option by keyword
    ctx: click.Context,
    *,
    run_id: str | None,
    all_runs: bool,
    require_signature: bool,
    public_key: Path | None,
    runs_root: Path | None,
) -> None:
    """Re-hash sealed bundles; compare them with manifest.sha256 and the recorded seal.

    A bundle passes when its files match its manifest.sha256 exactly (as `sha256sum -c`
    reads it) and that list is the one whose digest the seal journal (seals.jsonl) and
    the catalog recorded when the bundle was sealed.
    """
    if bool(run_id) == all_runs:
        click.echo("capa: error: give either RUN_ID or --all (not both)", err=True)
        click.echo(ctx.get_usage(), err=True)
        ctx.exit(EXIT_USAGE)
    import os

    from capa.bundle.catalog import Catalog
    from capa.bundle.paths import resolve_runs_root
    from capa.bundle.seal import PUBLIC_KEY_ENV, load_public_key, read_seals
    from capa.errors import BundleError

    root = resolve_runs_root(runs_root)
    cat = Catalog(root, create=False)
    key_path = public_key or (Path(p) if (p := os.environ.get(PUBLIC_KEY_ENV)) else None)
    if require_signature and key_path is None:
        raise BundleError(f"--require-signature needs --public-key or ${PUBLIC_KEY_ENV}")
    key = load_public_key(key_path) if key_path is not None else None
    if run_id:
        row = cat.get(run_id)
        if row is None:
            raise BundleError(
                f"run {run_id!r} is not in the catalog {cat.path} (try `capa catalog rebuild`)"
            )
        rows = [row]
    else:
        rows = cat.runs()
    seals, journal_problems = read_seals(root)
    for problem in journal_problems:
        click.echo(f"capa: warning: {problem}", err=True)
    worst = 0
    for row in rows:
        code = _verify_row(cat, row, seals.get(row.run_id, []), key, require_signature)
        worst = max(worst, code)
    if not rows:
        click.echo(f"no runs in {cat.path}")
    ctx.exit(worst)


def _verify_row(cat: Any, row: Any, records: list[Any], key: Any, require_signature: bool) -> int:
    """Print one run's verdict; return its exit code (0, 2 or 3)."""
    from capa.bundle.integrity import verify_bundle
    from capa.bundle.manifest import IntegrityStatus
    from capa.bundle.seal import check_anchors
    from capa.bundle.verdict import recorded_verdict

    bundle = cat.bundle_path(row)
    if not bundle.is_dir():
        click.echo(f"{row.run_id}  error: bundle directory {bundle} is missing")
        return EXIT_CATALOG_ERROR
    result = verify_bundle(bundle)
    verdict, result = recorded_verdict(bundle, result)
    anchors = check_anchors(
        bundle,
        row.run_id,
        catalog_digest=row.bundle_digest,
        records=records,
        public_key=key,
        require_signature=require_signature,
    )
    if result.status is IntegrityStatus.UNKNOWN and not anchors.problems:
        click.echo(f"{row.run_id}  not sealed: run `capa finalize {row.run_id}` first")
        return EXIT_CATALOG_ERROR
    if result.ok and not anchors.problems and not verdict:
        extra = "; signed" if anchors.signed else ""
        notes = "".join(f"; {n}" for n in anchors.notes)
        click.echo(f"{row.run_id}  ok ({result.checked} files{extra}){notes}")
        return 0
    # The bundle's own list may be intact while the seal records say it is not the list
    # that was sealed: that is a mismatch too.
    unchecked = (IntegrityStatus.OK, IntegrityStatus.UNKNOWN)
    own = result.describe() if result.status not in unchecked else ""
    # Finalize's own verdict first: files can match their list and still not be the run.
    reasons = [*verdict, own] if own else verdict or ["mismatch"]
    click.echo(f"{row.run_id}  {'; '.join([*reasons, *anchors.problems])}")
    return EXIT_MISMATCH


@catalog.command("rebuild")
@_runs_root_option
def rebuild(runs_root: Path | None) -> None:
    """Recreate runs.sqlite from the manifest.json of every bundle in the runs root.

    Seal digests come from seals.jsonl, never from the bundles. An unreadable runs.sqlite
    is kept aside as runs.sqlite.corrupt-<time> and replaced.
    """
    from capa.bundle.catalog import open_for_rebuild
    from capa.bundle.paths import resolve_runs_root
    from capa.errors import BundleError

    root = resolve_runs_root(runs_root)
    if not root.is_dir():
        raise BundleError(f"runs root {root} does not exist")
    cat, moved = open_for_rebuild(root)
    if moved is not None:
        click.echo(f"catalog was unreadable; kept it as {moved}")
    report = cat.rebuild()
    click.echo(f"indexed {len(report.indexed)} run(s) into {root / 'runs.sqlite'}")
    for name, why in sorted(report.skipped.items()):
        click.echo(f"skipped {name}: {why}")
    for problem in report.journal_problems:
        click.echo(f"capa: warning: {problem}", err=True)


@catalog.command("keygen")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def keygen(path: Path) -> None:
    """Create a rig signing key: PATH (private, mode 0600) and PATH.pub (public).

    Set CAPA_SEAL_KEY=PATH on the rig so every seal is signed; give PATH.pub to whoever
    verifies (`capa catalog verify --require-signature --public-key PATH.pub`).
    """
    from capa.bundle.seal import generate_key

    pub, key_id = generate_key(path)
    click.echo(f"private key: {path} (keep it on the rig, readable only by capa's user)")
    click.echo(f"public key:  {pub}")
    click.echo(f"key id:      {key_id}")


def _add_query() -> None:
    # Its own module (the query command brings its own output formats); a click command
    # object is cheap, DuckDB is imported only when the command runs.
    from capa.cli.catalog_query import query

    catalog.add_command(query)


_add_query()
