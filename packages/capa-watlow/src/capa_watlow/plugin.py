"""Entry point of the ``watlow`` capa plugin (``[project.entry-points.capa] watlow``).

Kept cheap to import: the adapter (and through it pyserial, which loads only
when a port is opened) and the CLI are imported inside the hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_adapters() -> Sequence[type[capa.Adapter]]:
    """The ``watlow.ezzone_pm`` adapter."""
    from capa_watlow.adapter import EzZonePM

    return (EzZonePM,)


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add the ``capa watlow`` group (``capa watlow sim --pty PATH``)."""
    from capa_watlow.cli import watlow

    group.add_command(watlow)
