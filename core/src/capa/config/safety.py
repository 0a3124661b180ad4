"""Safety configuration: alarms on channels and interlocks on commands.

Declared in the hardware file (``[[alarms]]``, ``[[interlocks]]``: limits of the rig) and
optionally in the experiment (``alarms:``, ``interlocks:``: limits of this specimen); the
run uses both lists. The run-time monitor (:mod:`capa.runtime.safety`) evaluates them
independently of the procedure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from capa.components.model import ConfigModel

__all__ = ["AlarmAction", "AlarmConfig", "InterlockConfig"]

AlarmAction = Literal["warn", "safe_shutdown", "abort"]

_DAY_S = 86_400.0


class AlarmConfig(ConfigModel):
    """An alarm on one channel: limits, rate of change, or staleness.

    ``high`` / ``low`` raise when the value passes them for ``min_duration_s`` and clear
    once it is back inside by ``hysteresis``; ``rate_max_per_s`` raises while the value
    changes faster than that (per second, either way); ``stale_s`` raises when the channel
    has had no new sample for that long. ``action`` says what a raised alarm does: ``warn``
    (an event only), ``safe_shutdown`` (the method's safe-shutdown steps, or each device's
    safe state, then the run ends *aborted*) or ``abort``.
    """

    name: str = Field(min_length=1, max_length=100, description="Unique alarm name.")
    channel: str = Field(description="Channel watched (measured or derived).")
    high: float | None = Field(default=None, description="Raise above this value.")
    low: float | None = Field(default=None, description="Raise below this value.")
    hysteresis: float = Field(
        default=0.0, ge=0, description="How far back inside a limit the value must come to clear."
    )
    min_duration_s: float = Field(
        default=0.0, ge=0, le=_DAY_S, description="How long a limit must be passed to raise."
    )
    rate_max_per_s: float | None = Field(
        default=None, gt=0, description="Raise while |d value / dt| exceeds this (per second)."
    )
    stale_s: float | None = Field(
        default=None, gt=0, le=_DAY_S, description="Raise when no sample arrived for this long."
    )
    severity: Literal["warning", "error", "critical"] = Field(
        default="error",
        description="How serious the alarm is (recorded in the event's metadata; a "
        "critical alarm is an error event).",
    )
    action: AlarmAction = Field(default="warn", description="warn | safe_shutdown | abort.")

    @model_validator(mode="after")
    def _something_to_watch(self) -> AlarmConfig:
        conditions = (self.high, self.low, self.rate_max_per_s, self.stale_s)
        if all(c is None for c in conditions):
            raise ValueError("an alarm needs high, low, rate_max_per_s or stale_s")
        if self.high is not None and self.low is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class InterlockConfig(ConfigModel):
    """Limits a command writing a channel may not exceed, whoever sends it.

    Enforced at the one place every device command passes (the run's dispatcher and the
    manual client), so method steps, procedures and manual commands are held to the same
    limits. Values are in the channel's units (after calibration).
    """

    channel: str = Field(description="A writable channel (e.g. the furnace set point).")
    max: float | None = Field(default=None, description="Highest value that may be written.")
    min: float | None = Field(default=None, description="Lowest value that may be written.")
    max_rate_per_min: float | None = Field(
        default=None,
        gt=0,
        description="Largest change per minute between consecutive writes (a ramp-rate limit).",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> InterlockConfig:
        if self.max is None and self.min is None and self.max_rate_per_min is None:
            raise ValueError("an interlock needs max, min or max_rate_per_min")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self
