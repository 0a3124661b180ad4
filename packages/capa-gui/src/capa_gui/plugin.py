"""Entry point of the ``gui`` capa plugin (``[project.entry-points.capa] gui``).

Adds ``capa gui`` through ``capa_register_cli``. Cheap to import: Starlette, uvicorn and
the runtime load only when the console starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add the ``capa gui`` command."""
    from capa_gui.cli import gui

    group.add_command(gui)
