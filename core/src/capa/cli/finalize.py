"""``capa finalize RUN_ID``: turn what a stopped or crashed run left on disk into a sealed bundle.

Exit codes (seed 001): 0 the bundle is sealed and verified; 2 the bundle directory or its
manifest is missing or malformed (or the run is still recording); 3 finalize failed, the
bundle does not match its ``manifest.sha256`` or the seal recorded for it, or it was
sealed before (a bundle is sealed once: a missing ``manifest.sha256`` on a bundle the seal
journal or the catalog knows is tampering, not a crash to recover from).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["finalize"]

EXIT_FINALIZE_ERROR = 3


@click.command()
@click.argument("run_id")
@click.option(
    "--runs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Runs root (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.pass_context
def finalize(ctx: click.Context, run_id: str, runs_root: Path | None) -> None:
    """Seal the bundle of RUN_ID: recover in-flight data, write Parquet, checksum, verify.

    Safe to repeat: a sealed bundle is only re-verified and no byte changes.
    """
    from capa.bundle.catalog import Catalog
    from capa.bundle.finalize import finalize_bundle
    from capa.bundle.paths import MANIFEST_FILE, bundle_dir, resolve_runs_root
    from capa.bundle.space import is_disk_full
    from capa.errors import BundleError, FinalizeError

    root = resolve_runs_root(runs_root)
    bundle = bundle_dir(root, run_id)
    if not bundle.is_dir():
        raise BundleError(f"no bundle directory {bundle}")
    if not (bundle / MANIFEST_FILE).is_file():
        raise BundleError(
            f"{bundle / MANIFEST_FILE}: manifest missing: not a run bundle, nothing to "
            "finalize (a run that never started recording leaves no bundle)"
        )
    _recover_checkpoint(root, run_id, bundle)

    try:
        result = finalize_bundle(bundle)
    except FinalizeError as exc:
        if not is_disk_full(exc):
            raise
        raise FinalizeError(
            f"disk full: cannot finalize {bundle} (no space left on its device); the bundle "
            f"was left as it is: free space, then run `capa finalize {run_id}` again"
        ) from exc
    try:
        Catalog(root).upsert(result.manifest, bundle)
    except BundleError as exc:
        click.echo(f"warning: catalog not updated: {exc}", err=True)

    manifest = result.manifest
    click.echo(f"bundle:           {bundle}")
    if result.already_sealed:
        click.echo("rewrote:          nothing (already sealed; re-verified only)")
    else:
        click.echo(f"rewrote:          {len(result.rewritten)} file(s)")
        for line in result.rewritten:
            click.echo(f"  {line}")
    click.echo(f"skipped:          {len(result.skipped)} file(s) already final")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"run_status:       {manifest.run_status.value}")
    click.echo(f"bundle_status:    {manifest.bundle_status.value}")
    click.echo(f"integrity_status: {result.integrity.describe()}")
    anchored = _anchor_problems(root, manifest.run_id, bundle) if result.already_sealed else []
    for problem in anchored:
        click.echo(f"seal:             {problem}")
    if not result.ok or anchored:
        ctx.exit(EXIT_FINALIZE_ERROR)


def _recover_checkpoint(root: Path, run_id: str, bundle: Path) -> None:
    """Handle a crash checkpoint of ``run_id`` left in ``root`` (refuses a live run)."""
    from capa.bundle.recovery import read_active, recover_stale

    active = read_active(root)
    if active is None or active.run_id != run_id:
        return
    stale = recover_stale(root)  # refuses while the recording process is alive
    if stale is not None and stale.foreign_path is not None:
        click.echo(
            f"warning: the run checkpoint names {stale.foreign_path}, outside {root}; "
            f"ignored it and finalized {bundle} only",
            err=True,
        )
    if stale is not None and stale.marked_crashed:
        click.echo(
            f"note: the process recording {run_id} (pid {active.pid}) ended without "
            "closing the bundle; run marked crashed"
        )


def _anchor_problems(root: Path, run_id: str, bundle: Path) -> list[str]:
    """How an already-sealed bundle differs from the seal the journal/catalog recorded."""
    from capa.bundle.catalog import Catalog
    from capa.bundle.seal import check_anchors, read_seals
    from capa.errors import BundleError

    try:
        row = Catalog(root, create=False).get(run_id)
    except BundleError:
        row = None
    return check_anchors(
        bundle,
        run_id,
        catalog_digest=row.bundle_digest if row is not None else None,
        records=read_seals(root)[0].get(run_id, []),
    ).problems
