"""Entry point of the ``procedures`` capa plugin (``[project.entry-points.capa] procedures``).

Registers the built-in procedures. Step kinds, the method executor, the recipe runner,
batch and heat-flux tune are still to come.
"""

from __future__ import annotations

from collections.abc import Sequence

import capa


@capa.hookimpl
def capa_register_procedures() -> Sequence[type[capa.Procedure]]:
    """The built-in procedures: ``capa.builtin.free_run``."""
    from capa_procedures.free_run import FreeRun

    return [FreeRun]
