"""The procedure contract: how a run is driven (ARCHITECTURE.md 3.2)."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from capa.components.model import ConfigModel

if TYPE_CHECKING:
    from capa.components.context import RunContext
    from capa.problems import Problem

__all__ = ["Procedure"]


class Procedure(abc.ABC):
    """Base class of procedures.

    Returning from :meth:`run` means the run completed; raising means it crashed (the
    bundle is still sealed); returning after ``ctx.external_stop`` was set means it was
    aborted.

    Attributes:
        id: stable dotted id (``capa.builtin.recipe_runner``).
        name: human name.
        version: the providing distribution's version (filled in by the plugin host when
            the class leaves it unset).
        Config: pydantic model of ``procedure.config`` in an experiment file.
        uses_method: whether the procedure needs a method file.
        required_channels: channel names the hardware must declare.
        required_capabilities: adapter capabilities some device must offer.
    """

    id: ClassVar[str]
    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    Config: ClassVar[type[ConfigModel]]
    uses_method: ClassVar[bool] = False
    required_channels: ClassVar[tuple[str, ...]] = ()
    required_capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ConfigModel) -> None:
        self.config = config

    async def preflight(self, ctx: RunContext) -> list[Problem]:
        """Check the run can proceed; error problems refuse it before any bundle exists."""
        return []

    @abc.abstractmethod
    async def run(self, ctx: RunContext) -> None:
        """Drive the run until it completes or ``ctx.external_stop`` is set."""
