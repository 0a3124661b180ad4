"""The kinds of component a plugin can provide, and the conventions of each kind."""

from __future__ import annotations

import enum
import re
from typing import Final

__all__ = ["COMPONENT_ID_PATTERN", "ComponentKind"]

COMPONENT_ID_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
"""Ids are lower-case dotted names, e.g. ``watlow.ezzone_pm`` or ``capa.builtin.free_run``."""


class ComponentKind(enum.StrEnum):
    """A kind of component, with the hook that registers it and its naming conventions."""

    ADAPTER = "adapter"
    PROCEDURE = "procedure"
    STEP = "step"
    SINK = "sink"
    PROFILE = "profile"

    @property
    def hook_name(self) -> str:
        """Name of the hook in :mod:`capa.hookspecs` that registers this kind."""
        return f"capa_register_{self.value}s"

    @property
    def id_attribute(self) -> str:
        """Class attribute holding the stable id (steps are known by their ``kind``)."""
        return "kind" if self is ComponentKind.STEP else "id"

    @property
    def config_attribute(self) -> str:
        """Nested model class holding the component's options (adapters call it ``Params``)."""
        return "Params" if self is ComponentKind.ADAPTER else "Config"
