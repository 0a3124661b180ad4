"""The method file (``*.method.toml``): an ordered list of steps of plugin-provided kinds."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from capa.components.model import ConfigModel

__all__ = ["METHOD_SUFFIXES", "MethodConfig", "is_method_path"]

METHOD_SUFFIXES = (".method.toml", ".method.yaml", ".method.yml")
"""File names a method may have."""


def is_method_path(name: str) -> bool:
    """Whether a file name is a method file by its suffix."""
    return name.lower().endswith(METHOD_SUFFIXES)


class MethodConfig(ConfigModel):
    """A method: what to do, step by step.

    Each step is a table with ``kind`` (a step kind from a plugin, e.g. ``hold``) plus the
    fields of that kind's model, and ``notes``; the kind's own model validates it.
    """

    name: str = Field(min_length=1, description="Method name.")
    description: str = Field(default="", description="What the method is for.")
    steps: list[dict[str, Any]] = Field(
        default_factory=list, description="Steps in order: each `{kind = ..., <fields>}`."
    )
