"""Entry point of the ``gui`` capa plugin (``[project.entry-points.capa] gui``).

Adds ``capa gui`` through ``capa_register_cli`` and serves ``capa run --serve`` through
``capa_live_console``. Cheap to import: Starlette, uvicorn and
the runtime load only when the console starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add the ``capa gui`` command."""
    from capa_gui.cli import gui

    group.add_command(gui)


@capa.hookimpl
def capa_live_console(address: str, runs_root: Path, plan: Any) -> Any:
    """Serve the Run page for ``capa run CONFIG --serve [HOST:PORT]``."""
    from capa_gui.watch import WatchConsole

    return WatchConsole(address, runs_root, plan)
