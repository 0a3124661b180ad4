"""Entry point of the ``nidaq`` capa plugin (``[project.entry-points.capa] nidaq``).

Kept cheap to import: the adapter is imported inside the hook, and ``nidaqmx`` only when
a real device is opened, discovered or handshaken.
"""

from __future__ import annotations

from collections.abc import Sequence

import capa


@capa.hookimpl
def capa_register_adapters() -> Sequence[type[capa.Adapter]]:
    """The ``nidaq.task`` adapter."""
    from capa_nidaq.adapter import NidaqTask

    return (NidaqTask,)
