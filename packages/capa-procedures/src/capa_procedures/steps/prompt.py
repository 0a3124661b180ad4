"""``prompt {title, message, timeout_s?, on_timeout}``: wait for an operator's acknowledgement."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
from pydantic import Field

import capa
from capa_procedures.errors import StepError
from capa_procedures.prompt_files import (
    ACK_FILE,
    PENDING_FILE,
    read_json,
    remove_quietly,
    write_json_atomic,
)
from capa_procedures.steps.base import MAX_DURATION_S, step_option

__all__ = ["DEFAULT_PROMPT_TIMEOUT_S", "PromptConfig", "PromptStep"]

DEFAULT_PROMPT_TIMEOUT_S = 600.0
"""How long a prompt without ``timeout_s`` waits in a headless run before it is unanswered."""

_POLL_S = 0.1


class PromptConfig(capa.StepConfig):
    """``prompt {title, message, timeout_s?, on_timeout}``."""

    title: str = Field(min_length=1)
    message: str = Field(default="", description="What the operator should do.")
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_S,
        description="Seconds to wait for an acknowledgement "
        f"(default {DEFAULT_PROMPT_TIMEOUT_S:g}).",
    )
    on_timeout: Literal["abort", "continue"] = Field(
        default="abort",
        description="abort: an unanswered prompt fails the step (run crashed, safe_shutdown "
        "runs); continue: record it and go on.",
    )


class PromptStep(capa.Step):
    """Show a message and wait until it is acknowledged (or auto-acknowledged).

    Events: ``method.prompt.shown``, then ``method.prompt.acknowledged`` or
    ``method.prompt.unanswered``. Acknowledge from another terminal with
    ``capa prompt ack RUN_ID``; ``auto_acknowledge_prompts`` (recipe runner) acknowledges
    after a zero-second yield.
    """

    kind = "prompt"
    Config = PromptConfig

    async def execute(self, ctx: capa.StepContext) -> None:
        """Show, wait, record the answer."""
        assert isinstance(self.config, PromptConfig)
        c = self.config
        events = ctx.run.events
        auto = bool(step_option(ctx, "auto_acknowledge_prompts", False))
        timeout = c.timeout_s or float(
            step_option(ctx, "prompt_timeout_s", DEFAULT_PROMPT_TIMEOUT_S)
        )
        meta: dict[str, Any] = {"index": ctx.index, "title": c.title, "timeout_s": timeout}
        events.emit(
            "method.prompt.shown",
            f"{c.title}: {c.message}" if c.message else c.title,
            metadata={
                **meta,
                "message": c.message,
                "auto_acknowledge": auto,
                "acknowledge_with": f"capa prompt ack {ctx.run.run_id}",
            },
        )
        if auto:
            await anyio.lowlevel.checkpoint()
            events.emit(
                "method.prompt.acknowledged",
                f"{c.title}: acknowledged automatically",
                metadata={**meta, "acknowledged_by": "auto"},
            )
            return
        answer = await self._wait_for_ack(ctx, timeout)
        if answer is None:
            if ctx.stop_requested:
                return
            events.emit(
                "method.prompt.unanswered",
                f"{c.title}: no acknowledgement within {timeout:g} s (on_timeout={c.on_timeout})",
                severity="warning" if c.on_timeout == "continue" else "error",
                metadata={**meta, "on_timeout": c.on_timeout},
            )
            if c.on_timeout == "abort":
                raise StepError(f"prompt {c.title!r} unanswered after {timeout:g} s")
            return
        events.emit(
            "method.prompt.acknowledged",
            f"{c.title}: acknowledged by {answer.get('by') or 'operator'}",
            metadata={**meta, "acknowledged_by": answer.get("by") or "operator"},
        )

    async def _wait_for_ack(self, ctx: capa.StepContext, wait_s: float) -> dict[str, Any] | None:
        """The acknowledgement, or ``None`` on timeout or stop."""
        assert isinstance(self.config, PromptConfig)
        bundle: Path | None = ctx.run.bundle_path
        if bundle is None:  # no bundle to exchange files through: only the timeout remains
            await ctx.sleep(wait_s)
            return None
        pending, ack = bundle / PENDING_FILE, bundle / ACK_FILE
        record = {
            "run_id": ctx.run.run_id,
            "step": ctx.index,
            "title": self.config.title,
            "message": self.config.message,
            "shown_utc": datetime.now(UTC).isoformat(),
        }
        await anyio.to_thread.run_sync(remove_quietly, ack)  # a stale answer is no answer
        await anyio.to_thread.run_sync(write_json_atomic, pending, record)
        deadline = time.monotonic() + wait_s
        # Shown by `capa run`'s live status (and any console) while the prompt waits.
        ctx.run.progress["prompt"] = {
            "title": self.config.title,
            "message": self.config.message,
            "ack": f"capa prompt ack {ctx.run.run_id}",
        }
        try:
            while True:
                answer = await anyio.to_thread.run_sync(read_json, ack)
                if answer is not None and answer.get("step") == ctx.index:
                    return answer
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await ctx.sleep(min(_POLL_S, remaining)):
                    return None
        finally:
            ctx.run.progress.pop("prompt", None)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(remove_quietly, ack)
                await anyio.to_thread.run_sync(remove_quietly, pending)
