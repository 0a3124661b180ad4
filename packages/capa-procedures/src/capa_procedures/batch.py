"""``capa.builtin.batch``: run an inner procedure N times, one child bundle per iteration.

Each child run goes through the run context's ``run_child`` (same worker pool, the parent's
sampling paused while a child runs, the parent's stop aborting the child). Every child's
manifest carries ``custom.batch = {batch_id, iteration, parent_sample_id}``; the batch id
is the parent's run id, so the parent bundle's events index its children.
"""

from __future__ import annotations

import string
from typing import Any

import anyio
from pydantic import Field, field_validator, model_validator

import capa
from capa_procedures.errors import ProcedureError
from capa_procedures.steps.base import MAX_DURATION_S

__all__ = ["Batch", "BatchConfig", "InnerProcedure"]

_TEMPLATE_FIELDS = frozenset({"parent_sample_id", "iteration", "batch_id"})


class InnerProcedure(capa.ConfigModel):
    """The procedure each iteration runs: ``{id, config}``."""

    id: str = Field(min_length=1, description="Procedure id, e.g. capa.builtin.recipe_runner.")
    config: dict[str, Any] = Field(default_factory=dict, description="Its procedure.config.")


class BatchConfig(capa.ConfigModel):
    """Options of a batch (``procedure.config``)."""

    iterations: int = Field(ge=1, le=10_000, description="How many child runs.")
    cooldown_s: float = Field(
        default=0.0, ge=0, le=MAX_DURATION_S, description="Pause between child runs."
    )
    inner: InnerProcedure
    sample_id_template: str = Field(
        default="{parent_sample_id}-{iteration}",
        description="Each child's sample id; fields: parent_sample_id, iteration, batch_id.",
    )
    fail_fast: bool = Field(
        default=True, description="Stop after the first child that does not complete."
    )

    @field_validator("sample_id_template")
    @classmethod
    def _template_fields_known(cls, template: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            unknown = names - _TEMPLATE_FIELDS
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(sorted(unknown))} in sample_id_template; "
                    f"allowed: {', '.join(sorted(_TEMPLATE_FIELDS))}"
                )
            rendered = template.format(parent_sample_id="S", iteration=1, batch_id="B")
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"sample_id_template {template!r}: {exc}") from None
        if "{iteration" not in template or not rendered.strip():
            raise ValueError(
                "sample_id_template must contain {iteration} so child sample ids differ"
            )
        return template

    @model_validator(mode="after")
    def _no_recursion(self) -> BatchConfig:
        if self.inner.id == Batch.id:
            raise ValueError("a batch cannot run a batch (inner.id is capa.builtin.batch)")
        return self


class Batch(capa.Procedure):
    """Run ``inner`` ``iterations`` times with ``cooldown_s`` between runs."""

    id = "capa.builtin.batch"
    name = "Batch"
    Config = BatchConfig
    uses_method = False

    async def run(self, ctx: capa.RunContext) -> None:
        """Every iteration in order; raises (crashed) when any child did not complete."""
        assert isinstance(self.config, BatchConfig)
        c = self.config
        events = ctx.events
        batch_id = ctx.run_id
        sample: Any = getattr(ctx.experiment, "sample", None)
        parent_sample_id = str(getattr(sample, "id", "") or "")
        events.emit(
            "batch.started",
            f"batch of {c.iterations} × {c.inner.id}",
            metadata={
                "batch_id": batch_id,
                "iterations": c.iterations,
                "inner_id": c.inner.id,
                "fail_fast": c.fail_fast,
                "cooldown_s": c.cooldown_s,
            },
        )
        children: list[dict[str, Any]] = []
        failed = 0
        for iteration in range(1, c.iterations + 1):
            if ctx.external_stop.is_set():
                break
            ctx.progress["step"] = f"child {iteration}/{c.iterations}"
            link = {
                "batch_id": batch_id,
                "iteration": iteration,
                "parent_sample_id": parent_sample_id,
            }
            sample_id = c.sample_id_template.format(**link)
            events.emit(
                "batch.child.started",
                f"child {iteration}/{c.iterations}: sample {sample_id}",
                metadata={**link, "sample_id": sample_id, "inner_id": c.inner.id},
            )
            record = await self._child(ctx, c, sample_id, link)
            children.append(record)
            ok = record["run_status"] == "completed" and record["bundle_status"] == "sealed"
            events.emit(
                "batch.child.ended",
                f"child {iteration}/{c.iterations}: {record['run_status']}"
                + (f" ({record['exit_reason']})" if record["exit_reason"] else ""),
                severity="info" if ok else "error",
                metadata=record,
            )
            if ctx.external_stop.is_set():
                break
            if not ok:
                failed += 1
                if c.fail_fast:
                    break
            if iteration < c.iterations and c.cooldown_s > 0:
                with anyio.move_on_after(c.cooldown_s):
                    await ctx.external_stop.wait()
        stopped = ctx.external_stop.is_set()
        completed = sum(1 for r in children if r["run_status"] == "completed")
        events.emit(
            "batch.ended",
            f"batch ended: {completed} completed, {failed} failed, "
            f"{c.iterations - len(children)} not run" + (" (stopped)" if stopped else ""),
            severity="info" if not failed else "error",
            metadata={
                "batch_id": batch_id,
                "completed": completed,
                "failed": failed,
                "not_run": c.iterations - len(children),
                "stopped": stopped,
                "children": [r["run_id"] for r in children],
            },
        )
        if failed and not stopped:
            raise ProcedureError(f"{failed} of {len(children)} child run(s) did not complete")

    @staticmethod
    async def _child(
        ctx: capa.RunContext, c: BatchConfig, sample_id: str, link: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one child; a child that cannot even start is a failed child, not a crash."""
        base: dict[str, Any] = {**link, "sample_id": sample_id}
        try:
            child = await ctx.run_child(
                c.inner.id, dict(c.inner.config), sample_id=sample_id, custom={"batch": link}
            )
        except Exception as exc:
            return {
                **base,
                "run_id": "",
                "run_status": "not_started",
                "bundle_status": "none",
                "integrity_status": "unknown",
                "exit_reason": f"{type(exc).__name__}: {exc}",
                "bundle_path": None,
            }
        path = getattr(child, "bundle_path", None)
        return {
            **base,
            "run_id": str(getattr(child, "run_id", "")),
            "run_status": str(getattr(child, "run_status", "")),
            "bundle_status": str(getattr(child, "bundle_status", "")),
            "integrity_status": str(getattr(child, "integrity_status", "")),
            "exit_reason": getattr(child, "exit_reason", None) or "",
            "bundle_path": str(path) if path else None,
        }
