"""Step kinds that only wait: ``wait`` and ``acquire``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import capa
from capa_procedures.errors import SafeShutdownRequested, StepError
from capa_procedures.steps.base import MAX_DURATION_S, EndCondition, wait_for

__all__ = ["AcquireConfig", "AcquireStep", "WaitConfig", "WaitStep"]


class WaitConfig(capa.StepConfig):
    """``wait {duration_s? | end_condition?, timeout_s?, on_timeout}``."""

    duration_s: float | None = Field(
        default=None, ge=0, le=MAX_DURATION_S, description="Seconds to wait."
    )
    end_condition: EndCondition | None = Field(
        default=None, description="Wait until this holds (and duration_s passed, if given)."
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=MAX_DURATION_S, description="Bound on the whole wait."
    )
    on_timeout: Literal["warn", "abort", "safe_shutdown"] = Field(
        default="warn",
        description="warn: record method.wait.timeout and go on; abort: fail the step (run "
        "crashed); safe_shutdown: run the method's safe_shutdown step and end the method.",
    )

    @model_validator(mode="after")
    def _needs_an_end(self) -> WaitConfig:
        if self.duration_s is None and self.end_condition is None:
            raise ValueError("wait needs duration_s, end_condition or both")
        return self


class WaitStep(capa.Step):
    """Wait for a duration and/or an end condition on a channel, bounded by a timeout."""

    kind = "wait"
    Config = WaitConfig

    def channels(self) -> tuple[str, ...]:
        """The end condition's channel (read, never written)."""
        assert isinstance(self.config, WaitConfig)
        cond = self.config.end_condition
        return (cond.channel,) if cond is not None else ()

    async def execute(self, ctx: capa.StepContext) -> None:
        """Wait; on timeout act as ``on_timeout`` says, recording ``method.wait.timeout``."""
        assert isinstance(self.config, WaitConfig)
        c = self.config
        outcome = await wait_for(
            ctx, duration_s=c.duration_s, condition=c.end_condition, timeout_s=c.timeout_s
        )
        if outcome != "timeout":
            return
        assert c.timeout_s is not None
        what = c.end_condition.describe() if c.end_condition else f"{c.duration_s:g} s"
        latest = ctx.latest(c.end_condition.channel) if c.end_condition else None
        message = f"step [{ctx.index:02d}] wait for {what} timed out after {c.timeout_s:g} s"
        ctx.run.events.emit(
            "method.wait.timeout",
            f"{message}; on_timeout={c.on_timeout}",
            severity="warning" if c.on_timeout == "warn" else "error",
            metadata={
                "index": ctx.index,
                "timeout_s": c.timeout_s,
                "on_timeout": c.on_timeout,
                "end_condition": c.end_condition.model_dump() if c.end_condition else None,
                "latest": latest,
            },
        )
        if c.on_timeout == "abort":
            raise StepError(message)
        if c.on_timeout == "safe_shutdown":
            raise SafeShutdownRequested(message)


class AcquireConfig(capa.StepConfig):
    """``acquire {duration_s}``."""

    duration_s: float = Field(
        gt=0, le=MAX_DURATION_S, description="Seconds to record without changing anything."
    )


class AcquireStep(capa.Step):
    """Record for a while without touching any device (every channel keeps sampling)."""

    kind = "acquire"
    Config = AcquireConfig

    async def execute(self, ctx: capa.StepContext) -> None:
        """Sleep for the duration; a stop ends it at once."""
        assert isinstance(self.config, AcquireConfig)
        await ctx.sleep(self.config.duration_s)
