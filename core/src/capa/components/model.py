"""The pydantic base model every component configuration derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigModel"]


class ConfigModel(BaseModel):
    """Base for component configuration models.

    Unknown keys are rejected (``extra="forbid"``) so a misspelt option in a hardware or
    experiment file is an error naming the key rather than a silently ignored setting;
    instances are frozen because they describe a run that must not change once it started.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmptyConfig(ConfigModel):
    """Configuration model of a component that takes no options."""
