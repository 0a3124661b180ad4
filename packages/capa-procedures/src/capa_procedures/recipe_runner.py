"""``capa.builtin.recipe_runner``: drive a method to completion (seed 002).

The body hands the method to a :class:`MethodExecutor` and lets it walk every step.
Beyond the seed: when the run is aborted (external stop) or crashes (a step raised) and the
method has a ``safe_shutdown`` step, that step runs before the procedure returns, so the
bundle is sealed with the rig left safe; ``safe_shutdown_on_abort = false`` turns this off.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import Field

import capa
from capa_procedures.errors import ProcedureError
from capa_procedures.executor import MethodExecutor

__all__ = ["RecipeRunner", "RecipeRunnerConfig", "safe_shutdown_budget_s"]

# After an operator's stop the conductor waits runtime.shutdown_grace_s for the procedure,
# then cancels it. The safe_shutdown must end inside that window: it gets this share of it.
_GRACE_SHARE = 0.8
_MIN_BUDGET_S = 0.5
# A crash has no grace window (nothing is waiting to cancel us), but must stay bounded.
_CRASH_BUDGET_S = 10.0


class RecipeRunnerConfig(capa.ConfigModel):
    """Options of the recipe runner (``procedure.config``)."""

    auto_acknowledge_prompts: bool = Field(
        default=False,
        description="Prompt steps acknowledge themselves after a zero-second yield "
        "(headless tests and batches); otherwise they wait for `capa prompt ack RUN_ID`.",
    )
    notes: str | None = Field(default=None, description="Operator comment for this run.")
    safe_shutdown_on_abort: bool = Field(
        default=True,
        description="On abort or crash, run the method's safe_shutdown step (if any) "
        "before the bundle is sealed.",
    )


def safe_shutdown_budget_s(ctx: capa.RunContext, *, crashed: bool) -> float:
    """Seconds a safe_shutdown may take after an abort (a share of the grace) or a crash."""
    if crashed:
        return _CRASH_BUDGET_S
    runtime: Any = getattr(ctx.experiment, "runtime", None)
    grace = float(getattr(runtime, "shutdown_grace_s", 5.0))
    return max(_MIN_BUDGET_S, grace * _GRACE_SHARE)


class RecipeRunner(capa.Procedure):
    """Walk the experiment's method step by step with the method executor.

    Subclass it to wrap the walk with extra setup or teardown; use
    ``self.executor.advance_until(n)`` to interleave phases between steps.
    """

    id = "capa.builtin.recipe_runner"
    name = "Recipe runner"
    Config = RecipeRunnerConfig
    uses_method = True

    def __init__(self, config: capa.ConfigModel) -> None:
        super().__init__(config)
        self.executor: MethodExecutor | None = None

    @property
    def current_step_index(self) -> int | None:
        """Index of the step being executed, for progress displays."""
        return self.executor.current_index if self.executor else None

    async def preflight(self, ctx: capa.RunContext) -> list[capa.Problem]:
        """Refuse without a method; a method whose steps were not instantiated is a bug."""
        if ctx.method is None:
            raise ProcedureError(
                f"{self.id} needs a method (`method:` in the experiment); to record "
                "without one, use capa.builtin.free_run"
            )
        declared = len(getattr(ctx.method, "steps", ()) or ())
        if len(ctx.steps) != declared:
            return [
                capa.Problem(
                    capa.Severity.ERROR,
                    "recipe_runner.no_executor",
                    "method",
                    f"the engine provided {len(ctx.steps)} step instance(s) for a method of "
                    f"{declared}: no executor can walk it (internal error)",
                )
            ]
        return []

    def make_executor(self, ctx: capa.RunContext) -> MethodExecutor:
        """The executor for this run (subclasses may configure another)."""
        assert isinstance(self.config, RecipeRunnerConfig)
        return MethodExecutor(
            ctx,
            auto_acknowledge_prompts=self.config.auto_acknowledge_prompts,
            issued_by=f"procedure:{self.id}",
        )

    async def run(self, ctx: capa.RunContext) -> None:
        """Run every step; on abort or crash run the safe_shutdown step first."""
        assert isinstance(self.config, RecipeRunnerConfig)
        cfg = self.config
        executor = self.executor = self.make_executor(ctx)
        method_name = getattr(ctx.method, "name", "")
        if cfg.notes:
            # Seed 002: the notes go into manifest.json custom; the event also keeps them on
            # the run's timeline.
            ctx.custom["notes"] = cfg.notes
            ctx.events.emit("recipe_runner.notes", cfg.notes, metadata={"notes": cfg.notes})
        ctx.log.info(
            "recipe_runner.start", method=method_name, steps=len(executor.steps), notes=cfg.notes
        )
        try:
            await executor.run_all()
        except anyio.get_cancelled_exc_class():
            # The conductor gave up waiting (a step ignored the stop): still leave it safe.
            await self._shutdown(ctx, executor, "cancelled", crashed=False)
            raise
        except Exception as exc:
            await self._shutdown(ctx, executor, f"crash: {type(exc).__name__}", crashed=True)
            raise
        if executor.stopped:
            await self._shutdown(ctx, executor, "abort", crashed=False)
        ctx.log.info(
            "recipe_runner.end",
            method=method_name,
            stopped_at=executor.stopped_at,
            safe_shutdown_done=executor.safe_shutdown_done,
        )

    async def _shutdown(
        self, ctx: capa.RunContext, executor: MethodExecutor, reason: str, *, crashed: bool
    ) -> None:
        assert isinstance(self.config, RecipeRunnerConfig)
        if not self.config.safe_shutdown_on_abort or executor.safe_shutdown_done:
            return
        await executor.run_safe_shutdown(
            reason, timeout_s=safe_shutdown_budget_s(ctx, crashed=crashed)
        )
