"""Core's built-in plugin: the components that ship with capa itself.

Core uses its own public hooks for these, so the plugin host treats them exactly like
components from any installed distribution (contract checks, duplicate detection,
provenance ``capa <version>``).
"""

from __future__ import annotations

from collections.abc import Sequence

from capa.components.adapter import Adapter
from capa.components.procedure import Procedure
from capa.components.sink import Sink
from capa.hookspecs import hookimpl


@hookimpl
def capa_register_adapters() -> Sequence[type[Adapter]]:
    """Core's adapters: the ``capa.sim.signals`` simulated device."""
    from capa.sim.signals import SimSignals

    return (SimSignals,)


@hookimpl
def capa_register_procedures() -> Sequence[type[Procedure]]:
    """Core's procedures: ``capa.builtin.free_run``, so core alone can record a run."""
    from capa.builtin.free_run import FreeRun

    return (FreeRun,)


@hookimpl
def capa_register_sinks() -> Sequence[type[Sink]]:
    """Core's sinks: ``capa.bundle``, the run bundle.

    The class is imported inside the hook so that loading the plugin host (and so
    ``capa plugins list``) does not pull in pyarrow.
    """
    from capa.bundle.sink import BundleSink

    return (BundleSink,)
