"""Step kinds that write a target channel: ``setpoint``, ``hold`` and ``ramp``."""

from __future__ import annotations

import time

from pydantic import Field, field_validator, model_validator

import capa
from capa_procedures.errors import StepError
from capa_procedures.steps.base import (
    MAX_DURATION_S,
    ChannelName,
    EndCondition,
    Finite,
    require_accepted,
    wait_for,
)

__all__ = ["HoldConfig", "HoldStep", "RampConfig", "RampStep", "SetpointConfig", "SetpointStep"]


class SetpointConfig(capa.StepConfig):
    """``setpoint {target, value}``."""

    target: ChannelName
    value: Finite = Field(description="Value in the channel's (calibrated) unit.")


class SetpointStep(capa.Step):
    """Write one value to a writable channel and go on at once."""

    kind = "setpoint"
    Config = SetpointConfig
    writes_target = True

    async def execute(self, ctx: capa.StepContext) -> None:
        """Write the value; a device refusal fails the step."""
        assert isinstance(self.config, SetpointConfig)
        c = self.config
        require_accepted(await ctx.write_channel(c.target, c.value), c.target, c.value)


class HoldConfig(capa.StepConfig):
    """``hold {target, value, duration_s?, end_condition?}``."""

    target: ChannelName
    value: Finite
    duration_s: float | None = Field(
        default=None, ge=0, le=MAX_DURATION_S, description="How long to hold."
    )
    end_condition: EndCondition | None = Field(
        default=None, description="Hold until this holds (after duration_s, if both are given)."
    )

    @model_validator(mode="after")
    def _needs_an_end(self) -> HoldConfig:
        if self.duration_s is None and self.end_condition is None:
            raise ValueError("hold needs duration_s, end_condition or both")
        return self


class HoldStep(capa.Step):
    """Write a value, then hold it for a duration and/or until an end condition."""

    kind = "hold"
    Config = HoldConfig
    writes_target = True

    def channels(self) -> tuple[str, ...]:
        """The target and the end condition's channel."""
        assert isinstance(self.config, HoldConfig)
        cond = self.config.end_condition
        return (self.config.target, *((cond.channel,) if cond else ()))

    def written_channels(self) -> tuple[str, ...]:
        """Only the target is written."""
        assert isinstance(self.config, HoldConfig)
        return (self.config.target,)

    async def execute(self, ctx: capa.StepContext) -> None:
        """Write the value, then wait (a stop ends the hold at once)."""
        assert isinstance(self.config, HoldConfig)
        c = self.config
        require_accepted(await ctx.write_channel(c.target, c.value), c.target, c.value)
        await wait_for(ctx, duration_s=c.duration_s, condition=c.end_condition)


class RampConfig(capa.StepConfig):
    """``ramp {target, start_value?, end_value, rate_per_second? | duration_s?, tick_s}``."""

    target: ChannelName
    start_value: Finite | None = Field(
        default=None, description="Where the ramp starts; default: the channel's latest value."
    )
    end_value: Finite
    rate_per_second: Finite | None = Field(
        default=None, description="Ramp speed in channel units per second (a magnitude)."
    )
    duration_s: float | None = Field(
        default=None, gt=0, le=MAX_DURATION_S, description="Ramp duration."
    )
    tick_s: float = Field(default=0.1, gt=0, le=10, description="Seconds between setpoint writes.")
    first_value_timeout_s: float = Field(
        default=10.0,
        ge=0,
        le=MAX_DURATION_S,
        description="Without start_value: how long to wait for the channel's first value "
        "(a method may start before the device's first poll has answered).",
    )

    @field_validator("rate_per_second")
    @classmethod
    def _positive_rate(cls, rate: float | None) -> float | None:
        if rate == 0:
            raise ValueError("ramp rate_per_second must not be zero (the ramp would never end)")
        if rate is not None and rate < 0:
            raise ValueError(
                "ramp rate_per_second is a magnitude and must be positive; the direction "
                "comes from start_value to end_value"
            )
        return rate

    @model_validator(mode="after")
    def _one_speed(self) -> RampConfig:
        if (self.rate_per_second is None) == (self.duration_s is None):
            raise ValueError("ramp needs exactly one of rate_per_second and duration_s")
        return self


class RampStep(capa.Step):
    """Write linearly changing setpoints every ``tick_s`` from the start to the end value.

    The value written at each tick follows elapsed time, so a slow device write does not
    stretch the ramp; the last write is exactly ``end_value``.
    """

    kind = "ramp"
    Config = RampConfig
    writes_target = True

    async def execute(self, ctx: capa.StepContext) -> None:
        """Ramp until the end value is written or the run is stopped."""
        assert isinstance(self.config, RampConfig)
        c = self.config
        start = c.start_value
        if start is None:
            start = ctx.latest(c.target)
            # The method can start before the device's first poll has answered: wait for
            # that first value (bounded) rather than fail on a race with the device.
            deadline = time.monotonic() + c.first_value_timeout_s
            while start is None and time.monotonic() < deadline:
                if not await ctx.sleep(0.05):
                    return  # stopped before the ramp began: nothing was written
                start = ctx.latest(c.target)
            if start is None:
                raise StepError(
                    f"ramp on {c.target!r} has no start_value and the channel had no value "
                    f"within {c.first_value_timeout_s:g} s"
                )
        span = c.end_value - start
        if c.duration_s is not None:
            duration = c.duration_s
        else:
            assert c.rate_per_second is not None
            duration = abs(span) / c.rate_per_second
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            fraction = 1.0 if duration <= 0 else min(1.0, elapsed / duration)
            value = c.end_value if fraction >= 1.0 else start + span * fraction
            require_accepted(await ctx.write_channel(c.target, value), c.target, value)
            if fraction >= 1.0:
                return
            remaining = duration - (time.monotonic() - t0)
            if not await ctx.sleep(max(0.0, min(c.tick_s, remaining))):
                return  # stopped mid-ramp: the executor records where
