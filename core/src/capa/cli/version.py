"""``capa version``: core version and every installed capa plugin, without importing any."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import click

from capa import __version__
from capa.cli.output import echo_json, echo_table

__all__ = ["CONSOLE_SCRIPT", "foreign_capa", "version"]

CONSOLE_SCRIPT = "capa.cli.main:main"
"""This project's ``capa`` console script: the marker its distribution metadata carries.

The PyPI name ``capa`` also belongs to an unrelated package (at 0.1). Plugins require
``capa>=0.2,<0.3``, which that package does not satisfy; this check catches the remaining
case, an environment whose ``capa`` metadata is not this project's.
"""


def foreign_capa() -> str | None:
    """Why the installed ``capa`` distribution is not this project, or None if it is.

    Compares the distribution metadata with the code that is running: its version must be
    ``capa.__version__`` and it must declare this project's ``capa`` console script.
    """
    try:
        dist = metadata.distribution("capa")
    except metadata.PackageNotFoundError:
        return "no 'capa' distribution is installed (running from a source tree?)"
    scripts = {ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    if dist.version != __version__ or CONSOLE_SCRIPT not in scripts:
        summary = str(dist.metadata.json.get("summary") or "no summary")
        return (
            f"the installed 'capa' distribution ({dist.version}: {summary}) is not this "
            f"project (capa {__version__}, lab control and data acquisition); plugins need "
            "capa>=0.2,<0.3 from this project: reinstall it (pip install 'capa>=0.2,<0.3')"
        )
    return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def version(as_json: bool) -> None:
    """Show capa's version and the version of every installed capa plugin.

    Plugins are read from package metadata only; none is imported. Warns when the
    installed `capa` distribution is not this project (the PyPI name is shared). Exit 0.
    """
    from capa.plugins.discovery import iter_entry_points

    plugins = iter_entry_points("capa")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    foreign = foreign_capa()
    if foreign is not None:
        click.echo(f"capa: warning: {foreign}", err=True)
    if as_json:
        echo_json(
            {
                "capa": __version__,
                "foreign_capa": foreign,
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
