"""The hooks a capa plugin may implement — the one hookspec module of capa.

A plugin is a module named by an entry point in the ``capa`` group::

    [project.entry-points.capa]
    watlow = "capa_watlow.plugin"

whose functions are marked with :data:`hookimpl`. Each ``capa_register_*`` hook returns
the component *classes* the plugin provides; the plugin host checks every class against
its contract and records which distribution provided it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from capa.components.adapter import Adapter
    from capa.components.procedure import Procedure
    from capa.components.profile import Profile
    from capa.components.sink import Sink
    from capa.components.step import Step

__all__ = [
    "PROJECT_NAME",
    "capa_live_console",
    "capa_register_adapters",
    "capa_register_cli",
    "capa_register_procedures",
    "capa_register_profiles",
    "capa_register_sinks",
    "capa_register_steps",
    "hookimpl",
    "hookspec",
]

PROJECT_NAME = "capa"
"""pluggy project name; also the entry-point group plugins are discovered in."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for a plugin's hook implementations: ``@capa.hookimpl``."""


@hookspec
def capa_register_adapters() -> Sequence[type[Adapter]]:  # type: ignore[empty-body]
    """Return the adapter classes (device families) this plugin provides."""


@hookspec
def capa_register_procedures() -> Sequence[type[Procedure]]:  # type: ignore[empty-body]
    """Return the procedure classes this plugin provides."""


@hookspec
def capa_register_steps() -> Sequence[type[Step]]:  # type: ignore[empty-body]
    """Return the method-step classes this plugin provides."""


@hookspec
def capa_register_sinks() -> Sequence[type[Sink]]:  # type: ignore[empty-body]
    """Return the sink classes this plugin provides."""


@hookspec
def capa_register_profiles() -> Sequence[type[Profile]]:  # type: ignore[empty-body]
    """Return the domain profile classes this plugin provides (what a kind of run must carry)."""


@hookspec
def capa_register_cli(group: click.Group) -> None:
    """Add subcommands to the ``capa`` command group (e.g. ``capa watlow sim``).

    Add one group named after the plugin rather than many top-level commands; a command
    whose name is already taken is refused and reported by ``capa plugins list``.
    """


@hookspec(firstresult=True)
def capa_live_console(address: str, runs_root: Path, plan: Any) -> Any:
    """Serve a live view of one ``capa run`` (``capa run CONFIG --serve [HOST:PORT]``).

    Return ``None`` to decline, or an object with ``url`` (str, printed for the operator),
    ``attach(conductor)`` (called on the run's loop before the conductor runs),
    ``finished(result)`` (the :class:`~capa.runtime.HeadlessResult`) and ``close()``.
    The console may stop the run and answer its prompts; it must never slow it. The
    first plugin that returns an object serves (capa-gui provides one).
    """
