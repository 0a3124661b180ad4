"""Entry point of the ``procedures`` capa plugin (``[project.entry-points.capa] procedures``).

Registers the built-in procedures, the built-in method-step kinds, the cone-calorimeter
domain profile and the ``capa prompt`` command group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_procedures() -> Sequence[type[capa.Procedure]]:
    """``capa.builtin.recipe_runner``, ``heat_flux_tune`` and ``batch``.

    ``capa.builtin.free_run`` is core's own (registering it here too would be a duplicate).
    """
    from capa_procedures.batch import Batch
    from capa_procedures.heat_flux import HeatFluxTune
    from capa_procedures.recipe_runner import RecipeRunner

    return [RecipeRunner, HeatFluxTune, Batch]


@capa.hookimpl
def capa_register_steps() -> Sequence[type[capa.Step]]:
    """``setpoint``, ``hold``, ``ramp``, ``wait``, ``prompt``, ``acquire``, ``safe_shutdown``."""
    from capa_procedures.steps import BUILTIN_STEPS

    return list(BUILTIN_STEPS)


@capa.hookimpl
def capa_register_profiles() -> Sequence[type[capa.Profile]]:
    """``pyrolysis.cone_calorimeter``: the cone-calorimeter pyrolysis profile."""
    from capa_procedures.profiles import ConeCalorimeterPyrolysis

    return [ConeCalorimeterPyrolysis]


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """``capa prompt``: answer a running method's prompt from another terminal."""
    from capa_procedures.prompt_cli import prompt

    group.add_command(prompt)
