"""``capa.builtin.free_run``: record every channel for a while, or until stopped.

Part of core itself (not of capa-procedures), so that a rig with only ``capa`` and one
device package — ``pip install capa capa-watlow`` — can record a run.
"""

from __future__ import annotations

import anyio
from pydantic import Field

import capa
from capa.components.model import MAX_DURATION_S


class FreeRunConfig(capa.ConfigModel):
    """Options of a free run."""

    duration_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_S,
        description="Seconds to record; omitted or null records until stopped (Ctrl-C); "
        "0 ends at once (a smoke test of the rig).",
    )


class FreeRun(capa.Procedure):
    """Record every channel without driving anything, for a duration or until stopped."""

    id = "capa.builtin.free_run"
    name = "Free run"
    Config = FreeRunConfig
    uses_method = False

    async def preflight(self, ctx: capa.RunContext) -> list[capa.Problem]:
        """A free run drives nothing, so a method would be silently ignored: refuse it."""
        if ctx.method is not None:
            return [
                capa.Problem(
                    capa.Severity.ERROR,
                    "free_run.method_not_supported",
                    "method",
                    "capa.builtin.free_run does not execute a method; remove `method` or "
                    "use capa.builtin.recipe_runner",
                )
            ]
        return []

    async def run(self, ctx: capa.RunContext) -> None:
        """Wait for the duration or the external stop, whichever comes first."""
        assert isinstance(self.config, FreeRunConfig)
        duration = self.config.duration_s
        ctx.events.emit(
            "free_run.started",
            "free run started" + (f" for {duration:g} s" if duration is not None else ""),
            metadata={"duration_s": duration},
        )
        stopped_by = "duration"
        if duration is None:
            await ctx.external_stop.wait()
            stopped_by = "external_stop"
        else:
            with anyio.move_on_after(duration):
                await ctx.external_stop.wait()
                stopped_by = "external_stop"
        ctx.events.emit(
            "free_run.ended", f"free run ended ({stopped_by})", metadata={"stopped_by": stopped_by}
        )
