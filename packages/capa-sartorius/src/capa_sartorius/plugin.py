"""Entry point of the ``sartorius`` capa plugin (``[project.entry-points.capa] sartorius``).

The plugin host imports this module and collects what its hooks return: the
``sartorius.balance`` adapter and the ``capa sartorius`` command group (simulator). The
module stays cheap to import: pyserial and the adapter load only when a hook runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_adapters() -> Sequence[type[capa.Adapter]]:
    """The ``sartorius.balance`` adapter."""
    from capa_sartorius.adapter import SartoriusBalance

    return (SartoriusBalance,)


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add ``capa sartorius`` (``capa sartorius sim --pty PATH``)."""
    from capa_sartorius.cli import sartorius

    group.add_command(sartorius)
