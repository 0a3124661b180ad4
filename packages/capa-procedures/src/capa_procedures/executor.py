"""The method executor: walks a method's steps in order, recording each one (seed 002).

Per step it writes ``method.step.entered``, then ``method.step.exited`` or
``method.step.failed`` (with the error) — index, kind and target in every one — and every
device write a step makes leaves a ``method.command.issued`` event. The external stop is
checked at every step boundary and inside every blocking step; a stop ends the walk with
``method.executor.stopped`` and no error (the run is *aborted*), a step that raises ends it
with the exception (the run *crashed*). There is no per-step retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

import capa
from capa_procedures.commands import write_recorded
from capa_procedures.errors import SafeShutdownRequested
from capa_procedures.steps.prompt import DEFAULT_PROMPT_TIMEOUT_S

__all__ = ["ExecutorStepContext", "MethodExecutor"]

SAFE_SHUTDOWN_KIND = "safe_shutdown"


def _step_label(step: capa.Step) -> str:
    target = getattr(step.config, "target", None)
    return f"[{step.index:02d}] {step.kind}" + (f" {target}" if isinstance(target, str) else "")


def _step_meta(step: capa.Step) -> dict[str, Any]:
    target = getattr(step.config, "target", None)
    try:
        channels = list(step.channels())
    except Exception:  # plugin code; the metadata must not be what fails
        channels = []
    return {
        "index": step.index,
        "kind": step.kind,
        "target": target if isinstance(target, str) else None,
        "channels": channels,
        "notes": getattr(step.config, "notes", ""),
    }


class ExecutorStepContext:
    """The :class:`capa.StepContext` the executor gives a step while it runs.

    Beyond the protocol it offers ``auto_acknowledge_prompts`` and ``prompt_timeout_s``,
    which the built-in ``prompt`` step reads.
    """

    def __init__(self, executor: MethodExecutor, step: capa.Step) -> None:
        self._executor = executor
        self._step = step
        self.auto_acknowledge_prompts = executor.auto_acknowledge_prompts
        self.prompt_timeout_s = executor.prompt_timeout_s

    @property
    def run(self) -> capa.RunContext:
        """The run the step belongs to."""
        return self._executor.ctx

    @property
    def index(self) -> int:
        """The step's position in the method."""
        return self._step.index

    def latest(self, channel: str) -> float | None:
        """Latest value of a channel, or the method's last write if that is newer.

        A device sampled before the write still shows the old value; a ramp right after a
        setpoint must start from the new setpoint, not from that stale reading.
        """
        run = self._executor.ctx
        commanded = self._executor.commanded.get(channel)
        if commanded is not None:
            sampled = getattr(run.channels, "latest_with_time", None)
            last = sampled(channel) if callable(sampled) else None
            if last is None or last[0] < commanded[0]:
                return commanded[1]
        return run.channels.latest(channel)

    async def write_channel(self, channel: str, value: float) -> capa.CommandResult:
        """Write through the channel's inverse calibration; records ``method.command.issued``."""
        run = self._executor.ctx
        result = await write_recorded(
            run,
            channel,
            value,
            event_kind="method.command.issued",
            step_kind=self._step.kind,
            issued_by=self._executor.issued_by,
            authorization_id=f"{run.run_id}:method:{self._step.index:02d}",
        )
        if result.accepted:
            self._executor.commanded[channel] = (run.clock.now_ns(), float(value))
        return result

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the run is stopped first; ``False`` when stopped early."""
        stop = self._executor.ctx.external_stop
        if stop.is_set():
            return False
        with anyio.move_on_after(max(0.0, seconds)):
            await stop.wait()
        return not stop.is_set()

    @property
    def stop_requested(self) -> bool:
        """True once the run was asked to stop."""
        return self._executor.ctx.external_stop.is_set()


class MethodExecutor:
    """Executes ``ctx.steps`` (or the given steps) in order; a :class:`capa.MethodRunner`.

    Args:
        ctx: the run.
        steps: the steps to walk; default ``ctx.steps``.
        auto_acknowledge_prompts: prompts acknowledge themselves (headless tests, batches).
        prompt_timeout_s: how long a prompt without its own ``timeout_s`` waits.
        issued_by: recorded as ``issued_by`` in every ``method.command.issued`` event.
    """

    def __init__(
        self,
        ctx: capa.RunContext,
        steps: Sequence[capa.Step] | None = None,
        *,
        auto_acknowledge_prompts: bool = False,
        prompt_timeout_s: float = DEFAULT_PROMPT_TIMEOUT_S,
        issued_by: str = "method",
    ) -> None:
        self.ctx = ctx
        self.steps: list[capa.Step] = list(ctx.steps if steps is None else steps)
        self.auto_acknowledge_prompts = auto_acknowledge_prompts
        self.prompt_timeout_s = prompt_timeout_s
        self.issued_by = issued_by
        self.commanded: dict[str, tuple[int, float]] = {}
        """Channel -> (run-clock time, value) of the method's last accepted write."""
        self._next = 0
        self._current: int | None = None
        self.stopped_at: int | None = None
        """Index of the step at (or before) which an external stop ended the walk."""
        self.safe_shutdown_done = False
        """Whether a ``safe_shutdown`` step has run to its end in this run."""

    # ----------------------------------------------------------------- progress
    @property
    def current_index(self) -> int | None:
        """Index of the step being executed (``None`` between steps)."""
        return self._current

    @property
    def next_index(self) -> int:
        """Index of the next step :meth:`advance_until` would execute."""
        return self._next

    @property
    def stopped(self) -> bool:
        """Whether an external stop ended the walk early."""
        return self.stopped_at is not None

    @property
    def finished(self) -> bool:
        """Whether every step was walked (or the method ended by its safe_shutdown)."""
        return self._next >= len(self.steps)

    # ----------------------------------------------------------------- walking
    async def run_all(self) -> None:
        """Execute every remaining step in order (returns early on an external stop)."""
        await self.advance_until(len(self.steps))

    async def advance_until(self, index: int) -> None:
        """Execute steps from the next one up to (not including) ``index``.

        Lets a procedure interleave its own phases: ``advance_until(3)``, do something,
        then ``run_all()``. Returns early on an external stop; raises what a step raises.
        """
        end = min(index, len(self.steps))
        while self._next < end:
            if self.ctx.external_stop.is_set():
                self._record_stop(self._next, inside=False)
                return
            step = self.steps[self._next]
            self._next += 1
            try:
                await self.execute(step)
            except SafeShutdownRequested as request:
                self._next = len(self.steps)  # the method ends with its safe_shutdown
                await self.run_safe_shutdown(f"step [{step.index:02d}]: {request}")
                return
            if self.ctx.external_stop.is_set():
                self._record_stop(step.index, inside=True)
                return

    async def execute(self, step: capa.Step, *, purpose: str = "method") -> None:
        """Run one step between its ``entered`` and ``exited`` / ``failed`` events."""
        meta = _step_meta(step)
        if purpose != "method":
            meta["purpose"] = purpose
        label = _step_label(step)
        self._current = step.index
        self.ctx.progress["step"] = f"{step.index + 1}/{len(self.steps)} {step.kind}"
        # Seed 003: run.log lines written while the step runs (its own, the executor's,
        # the commands it issues) carry the step's id and kind.
        with capa.log_context(step_id=step.index, step_kind=step.kind):
            await self._execute_logged(step, meta, label)

    async def _execute_logged(self, step: capa.Step, meta: dict[str, Any], label: str) -> None:
        events = self.ctx.events
        self.ctx.log.info("method.step.entered", **meta)
        events.emit("method.step.entered", label, metadata=meta)
        try:
            await step.execute(ExecutorStepContext(self, step))
        except SafeShutdownRequested as request:
            events.emit(
                "method.step.exited",
                f"{label}: {request}",
                metadata={**meta, "outcome": "safe_shutdown"},
            )
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.ctx.log.error("method.step.failed", error=error, **meta)
            events.emit(
                "method.step.failed",
                f"{label} failed: {error}",
                severity="error",
                metadata={**meta, "error_type": type(exc).__name__, "error": str(exc)},
            )
            raise
        finally:
            self._current = None
        stopped = self.ctx.external_stop.is_set()
        if step.kind == SAFE_SHUTDOWN_KIND:
            self.safe_shutdown_done = True
        events.emit(
            "method.step.exited",
            label + (" (stopped)" if stopped else ""),
            metadata={**meta, "outcome": "stopped" if stopped else "completed"},
        )

    def safe_shutdown_step(self) -> capa.Step | None:
        """The method's (last) ``safe_shutdown`` step, if it has one."""
        found = [s for s in self.steps if s.kind == SAFE_SHUTDOWN_KIND]
        return found[-1] if found else None

    async def run_safe_shutdown(self, reason: str, *, timeout_s: float | None = None) -> bool:
        """Execute the method's ``safe_shutdown`` step now, shielded from cancellation.

        Used after an abort or a crash (by the recipe runner) and for a ``wait`` whose
        ``on_timeout`` is ``safe_shutdown``. Bounded by ``timeout_s`` so it fits the
        conductor's shutdown grace. Never raises: the original failure, if any, is the one
        that matters. Returns whether the step ran to its end.
        """
        step = self.safe_shutdown_step()
        if step is None:
            return False
        events = self.ctx.events
        meta = {"index": step.index, "reason": reason, "timeout_s": timeout_s}
        events.emit(
            "method.safe_shutdown",
            f"running safe_shutdown step [{step.index:02d}] ({reason})",
            severity="warning",
            metadata=meta,
        )
        completed = False
        with anyio.CancelScope(shield=True) as scope:
            if timeout_s is not None:
                scope.deadline = anyio.current_time() + timeout_s
            try:
                await self.execute(step, purpose=reason)
                completed = True
            except Exception as exc:  # already recorded as method.step.failed
                self.ctx.log.error("method.safe_shutdown_failed", error=str(exc))
        if scope.cancelled_caught:
            events.emit(
                "method.safe_shutdown.timeout",
                f"safe_shutdown step [{step.index:02d}] did not finish within {timeout_s:g} s",
                severity="error",
                metadata=meta,
            )
        return completed

    def _record_stop(self, index: int, *, inside: bool) -> None:
        self.stopped_at = index
        where = "during" if inside else "before"
        self.ctx.log.info("method.executor.stopped", index=index, inside_step=inside)
        self.ctx.events.emit(
            "method.executor.stopped",
            f"external stop {where} step [{index:02d}]",
            metadata={"index": index, "inside_step": inside},
        )
