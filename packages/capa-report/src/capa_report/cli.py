"""``capa report RUN_ID [--out DIR]`` (added through ``capa_register_cli``).

Exit codes (seed 001 conventions): 0 the report was written and the bundle verified;
2 the run is unknown, its bundle cannot be read, or the report cannot be written (one
line on stderr, nothing half-written); 3 the report was written but the bundle failed its
integrity check (the report says which files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from capa_report.build import Written
    from capa_report.source import BundleData

__all__ = ["report"]

EXIT_ERROR = 2
EXIT_INTEGRITY = 3


@click.command("report")
@click.argument("run_id")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=True),
    default=None,
    help="Folder for report.html and figures/ (default: ./report-<run_id>).",
)
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where bundles are (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.pass_context
def report(ctx: click.Context, run_id: str, out: Path | None, runs_root: Path | None) -> None:
    """Write an offline HTML report of a run, with PNG figures beside it.

    RUN_ID is a run id under the runs root, or the path of a bundle folder. The report
    (report.html) shows the run summary, the integrity check, every channel plotted by
    plot group with its unit and the method's step boundaries, the method timeline, device
    health and the events; figures/<group>.png are the same plots, for papers.
    """
    ctx.exit(_main(run_id, out, runs_root))


def _main(run_id: str, out: Path | None, runs_root: Path | None) -> int:
    import capa
    from capa_report.source import open_run

    try:
        data = open_run(run_id, runs_root)
    except capa.CapaError as exc:
        click.echo(f"capa: error: {exc}", err=True)
        return EXIT_ERROR
    target = out if out is not None else Path(f"report-{data.run_id}")
    written = _write(data, target)
    if isinstance(written, str):
        click.echo(f"capa: error: {written}", err=True)
        return EXIT_ERROR
    click.echo(f"report:     {written.html}")
    click.echo(f"figures:    {len(written.figures)} in {written.html.parent / 'figures'}")
    click.echo(f"steps:      {len(written.steps)}")
    click.echo(f"integrity:  {written.integrity.status}")
    if not written.integrity.ok:
        click.echo(f"capa: warning: {data.run_id}: integrity {written.integrity.detail}", err=True)
        return EXIT_INTEGRITY
    return 0


def _write(data: BundleData, target: Path) -> Written | str:
    """Write the report; the one-line reason when it cannot be written."""
    import pyarrow as pa

    import capa
    from capa_report.build import write_report

    inside = data.bundle_path.resolve()
    if target.resolve() == inside or target.resolve().is_relative_to(inside):
        # Anything written there would be a file the seal does not list: the next
        # `capa catalog verify` would fail the run.
        return f"--out {target} is inside the bundle {inside}; a report must be written outside it"
    try:
        return write_report(data, target)
    except capa.CapaError as exc:
        return f"{data.run_id}: {exc}"
    except pa.ArrowException as exc:  # a damaged table the reader could not decode
        return f"{data.run_id}: cannot read the bundle's data: {exc}"
    except OSError as exc:
        return f"cannot write the report to {exc.filename or target}: {exc.strerror}"
