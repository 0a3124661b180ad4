"""Entry point of the ``report`` capa plugin (``[project.entry-points.capa] report``).

Adds ``capa report`` through ``capa_register_cli``. Cheap to import: matplotlib, numpy
and the bundle reader load only when a report is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add the ``capa report`` command."""
    from capa_report.cli import report

    group.add_command(report)
