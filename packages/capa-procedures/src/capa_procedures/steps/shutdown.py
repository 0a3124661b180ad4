"""``safe_shutdown {cool_target = {channel = value}, duration_s?}``: leave the rig safe."""

from __future__ import annotations

from pydantic import Field

import capa
from capa_procedures.steps.base import MAX_DURATION_S, Finite

__all__ = ["SafeShutdownConfig", "SafeShutdownStep"]


class SafeShutdownConfig(capa.StepConfig):
    """``safe_shutdown {cool_target, duration_s?}``."""

    cool_target: dict[str, Finite] = Field(
        min_length=1, description="Channel -> safe value, written in this order."
    )
    duration_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_S,
        description="Seconds to keep recording after the writes (skipped when the run is "
        "being stopped).",
    )


class SafeShutdownStep(capa.Step):
    """Write every cool target, best effort: one that fails is a warning, not a crash.

    The recipe runner also runs this step when a run is aborted or crashes, so it must
    never itself stop half way: each target is attempted whatever happened to the others.
    """

    kind = "safe_shutdown"
    Config = SafeShutdownConfig
    writes_target = True

    def channels(self) -> tuple[str, ...]:
        """Every cool-target channel."""
        assert isinstance(self.config, SafeShutdownConfig)
        return tuple(self.config.cool_target)

    def safe_targets(self) -> dict[str, float]:
        """The cool targets: what the safety monitor writes on a safe-shutdown alarm."""
        assert isinstance(self.config, SafeShutdownConfig)
        return {k: float(v) for k, v in self.config.cool_target.items()}

    async def execute(self, ctx: capa.StepContext) -> None:
        """Write each target, then wait ``duration_s`` unless the run is stopping."""
        assert isinstance(self.config, SafeShutdownConfig)
        known = set(ctx.run.channels.names())
        for channel, value in self.config.cool_target.items():
            problem = ""
            if channel not in known:
                problem = "the run has no such channel"
            else:
                try:
                    result = await ctx.write_channel(channel, value)
                except Exception as exc:  # best effort: go on with the other targets
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    problem = "" if result.accepted else f"refused: {result.detail}"
            if problem:
                ctx.run.events.emit(
                    "method.safe_shutdown.target_failed",
                    f"safe_shutdown could not set {channel} = {value:g}: {problem}",
                    severity="warning",
                    metadata={"index": ctx.index, "channel": channel, "value": value},
                )
        if self.config.duration_s and not ctx.stop_requested:
            await ctx.sleep(self.config.duration_s)
