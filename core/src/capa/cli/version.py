"""``capa version``: core version and every installed capa plugin, without importing any."""

from __future__ import annotations

import platform
import sys

import click

from capa import __version__
from capa.cli.output import echo_json, echo_table

__all__ = ["version"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def version(as_json: bool) -> None:
    """Show capa's version and the version of every installed capa plugin.

    Plugins are read from package metadata only; none is imported.
    """
    from capa.plugins.discovery import iter_entry_points

    plugins = iter_entry_points("capa")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    if as_json:
        echo_json(
            {
                "capa": __version__,
                "python": python,
                "platform": sys.platform,
                "plugins": [
                    {"name": p.name, "dist": p.dist_name, "version": p.dist_version}
                    for p in plugins
                ],
            }
        )
        return
    click.echo(f"capa {__version__} ({python}, {platform.system()} {platform.machine()})")
    if not plugins:
        click.echo("no capa plugins installed")
        return
    echo_table(
        ["plugin", "distribution", "version"],
        [(p.name, p.dist_name, p.dist_version) for p in plugins],
    )
