"""The pydantic base model every component configuration derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["MAX_DURATION_S", "ConfigModel"]

MAX_DURATION_S = 366 * 86_400.0
"""Upper bound of any duration in a configuration: a year. Longer is a typo, and values
near 2**63 overflow clocks and timestamps at run time rather than at validation."""


class ConfigModel(BaseModel):
    """Base for component configuration models.

    Unknown keys are rejected (``extra="forbid"``) so a misspelt option in a hardware or
    experiment file is an error naming the key rather than a silently ignored setting;
    instances are frozen because they describe a run that must not change once it started.
    Floats must be finite (``allow_inf_nan=False``): ``.inf`` as a timeout or ``nan`` as a
    setpoint would validate and then break the run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EmptyConfig(ConfigModel):
    """Configuration model of a component that takes no options."""
