"""``capa camera ...``: the plugin's command group (added through ``capa_register_cli``)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["camera"]

_BUNDLE = click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
_DEVICE = click.option(
    "--device", default="cam", show_default=True, help="The camera's device name."
)


@click.group()
def camera() -> None:
    """Camera recordings: list or join a bundle's video segments."""


@camera.command("segments")
@_BUNDLE
@_DEVICE
def segments(bundle: Path, device: str) -> None:
    """Print an ffmpeg concat list of the camera's segments.

    Join them losslessly with: capa camera segments BUNDLE > list.txt; then
    ffmpeg -f concat -safe 0 -i list.txt -c copy cam.avi
    """
    from capa_camera.join import concat_list, segment_files

    click.echo(concat_list(segment_files(bundle, device)), nl=False)


@camera.command("join")
@_BUNDLE
@_DEVICE
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default ./<device>.avi); never inside the bundle.",
)
def join(bundle: Path, device: str, output: Path | None) -> None:
    """Write the camera's whole recording as one MJPEG AVI (MJPG copied, not re-encoded)."""
    from capa_camera.join import join_segments

    out = output or Path(f"{device}.avi")
    if out.exists():
        raise click.BadParameter(f"{out} exists; choose another file", param_hint="--output")
    if out.resolve().is_relative_to(bundle.resolve()):
        raise click.BadParameter("a sealed bundle is never changed", param_hint="--output")
    frames = join_segments(bundle, device, out)
    click.echo(f"{out}: {frames} frames")
