"""``capa export RUN_ID --format csv|parquet-wide|netcdf``: a run's samples for other tools.

Exit codes (seed 001): 0 written; 2 the run, a channel or the output cannot be used, or
NetCDF without ``capa[netcdf]`` installed (nothing is written then); 64 usage errors (no
``--format``, an unknown one).
"""

from __future__ import annotations

from pathlib import Path

import click

from capa.cli.output import echo_json

__all__ = ["export"]

# Literal here so `capa export --help` does not import capa.read (pyarrow); a test checks
# it equals capa.read.export.FORMATS.
FORMATS = ("csv", "parquet-wide", "netcdf")


def _split_channels(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> list[str] | None:
    names = [n.strip() for v in value for n in v.split(",") if n.strip()]
    return names or None


@click.command("export")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Output format.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file, or a directory for <run_id>.<ext> (default: ./<run_id>.<ext>).",
)
@click.option(
    "--channels",
    multiple=True,
    callback=_split_channels,
    metavar="NAMES",
    help="Channels to export, comma-separated or repeated (default: all).",
)
@click.option("--start", type=float, default=None, help="Window start, seconds of run time.")
@click.option("--end", type=float, default=None, help="Window end (exclusive), seconds.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option(
    "--runs-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Runs root (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def export(  # click passes every option by keyword
    *,
    run_id: str,
    fmt: str,
    out: Path | None,
    channels: list[str] | None,
    start: float | None,
    end: float | None,
    force: bool,
    runs_root: Path | None,
    as_json: bool,
) -> None:
    """Export a run's samples (wide: one row per time, one column per channel).

    RUN_ID is a run id under the runs root or a bundle directory. Units go with the
    data: CSV gets a sidecar <file>.json, Parquet keeps capa.* column metadata, NetCDF
    variables carry `units`. Devices are outer-joined on t_mono_ns: a cell is empty
    where that channel's device did not sample at that time.
    """
    from capa.errors import BundleError
    from capa.read.bundle import open_bundle
    from capa.read.export import default_name, export_bundle

    bundle = open_bundle(run_id, runs_root=runs_root)
    name = default_name(bundle.run_id, fmt)
    target = Path.cwd() / name if out is None else (out / name if out.is_dir() else out)
    if not target.parent.is_dir():
        raise BundleError(f"--out {target}: folder {target.parent} does not exist")
    if target.exists() and not force:
        raise BundleError(f"--out {target}: file exists (use --force to replace it)")
    if target.resolve().is_relative_to(bundle.path.resolve()):
        # A file added to a sealed bundle would make it fail verification (partial).
        raise BundleError(f"--out {target}: must not be inside the bundle {bundle.path}")
    result = export_bundle(bundle, fmt, target, channels=channels, start=start, end=end)
    summary = {
        "run_id": bundle.run_id,
        "format": fmt,
        "path": str(result.path),
        "rows": result.rows,
        "channels": result.channels,
        "metadata": str(result.sidecar) if result.sidecar else None,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote {result.path} ({result.rows} rows, {len(result.channels)} channels)")
    if result.sidecar is not None:
        click.echo(f"units and clock anchor: {result.sidecar}")
