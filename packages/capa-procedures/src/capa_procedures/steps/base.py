"""Pieces shared by the built-in step kinds: end conditions, stoppable waiting, options."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field

import capa
from capa_procedures.errors import StepError

__all__ = [
    "MAX_DURATION_S",
    "ChannelName",
    "EndCondition",
    "Finite",
    "WaitOutcome",
    "require_accepted",
    "step_option",
    "wait_for",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite (a setpoint of ``inf`` is never meant)."""

MAX_DURATION_S = 366 * 86_400.0
"""Longest duration or timeout a step accepts (a year): anything longer is a typo, and
values near 2**63 s would overflow the clock when the step starts rather than fail here."""

ChannelName = Annotated[str, Field(min_length=1, description="A channel of the hardware.")]

WaitOutcome = Literal["done", "stopped", "timeout"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}

# Longest a waiting step goes without looking at the stop flag or the channel (seed 002:
# a stop is honoured within about 100 ms).
_WAKE_S = 0.1


class EndCondition(capa.ConfigModel):
    """``{channel, op, value}``: true when the channel's latest value compares so."""

    channel: ChannelName
    op: Literal[">", ">=", "<", "<=", "=="] = Field(description="Comparison operator.")
    value: Finite

    def holds(self, latest: float | None) -> bool:
        """Whether ``latest`` satisfies the condition (never before the first sample)."""
        if latest is None or math.isnan(latest):
            return False
        return _OPS[self.op](latest, self.value)

    def describe(self) -> str:
        """``furnace_t >= 100``."""
        return f"{self.channel} {self.op} {self.value:g}"


def step_option(ctx: capa.StepContext, name: str, default: Any) -> Any:
    """An executor option (``auto_acknowledge_prompts``) when the executor offers it.

    The :class:`capa.StepContext` protocol is minimal; capa-procedures' executor adds a few
    attributes. A step run by another executor falls back to ``default``.
    """
    return getattr(ctx, name, default)


def require_accepted(result: capa.CommandResult, channel: str, value: float) -> None:
    """Raise :class:`StepError` when a device refused a write the step depends on."""
    if not result.accepted:
        raise StepError(f"device refused {channel} = {value:g}: {result.detail or 'no detail'}")


async def wait_for(
    ctx: capa.StepContext,
    *,
    duration_s: float | None = None,
    condition: EndCondition | None = None,
    timeout_s: float | None = None,
) -> WaitOutcome:
    """Wait until ``duration_s`` has passed *and* ``condition`` holds, or a stop / timeout.

    Returns ``"done"``, ``"stopped"`` (the run was asked to stop) or ``"timeout"``
    (``timeout_s`` passed first). A condition wakes on every new value of its channel
    (a subscription where the run offers one, else the latest value at 10 Hz).
    """
    start = time.monotonic()
    channels: Any = ctx.run.channels
    subscribe = getattr(channels, "subscribe", None) if condition is not None else None
    if condition is None or subscribe is None:
        return await _wait_loop(
            ctx, start, duration_s=duration_s, condition=condition, timeout_s=timeout_s, sub=None
        )
    sub = subscribe([condition.channel], 64)
    outcome: WaitOutcome = "stopped"
    try:
        # A subscription's get() does not wake on a stop: a watcher cancels the wait
        # as soon as the run's external stop is set.
        async with anyio.create_task_group() as tg:

            async def cancel_on_stop() -> None:
                await ctx.run.external_stop.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_on_stop)
            outcome = await _wait_loop(
                ctx, start, duration_s=duration_s, condition=condition, timeout_s=timeout_s, sub=sub
            )
            tg.cancel_scope.cancel()
    finally:
        channels.unsubscribe(sub)
    return outcome


async def _wait_loop(
    ctx: capa.StepContext,
    start: float,
    *,
    duration_s: float | None,
    condition: EndCondition | None,
    timeout_s: float | None,
    sub: Any,
) -> WaitOutcome:
    current = ctx.latest(condition.channel) if condition is not None else None
    while True:
        if ctx.stop_requested:
            return "stopped"
        elapsed = time.monotonic() - start
        duration_ok = duration_s is None or elapsed >= duration_s
        if duration_ok and (condition is None or condition.holds(current)):
            return "done"
        if timeout_s is not None and elapsed >= timeout_s:
            return "timeout"
        wake = math.inf
        if not duration_ok and duration_s is not None:
            wake = duration_s - elapsed
        if timeout_s is not None:
            wake = min(wake, timeout_s - elapsed)
        if condition is None:
            await ctx.sleep(max(wake, 0.0))  # wakes at once on a stop
            continue
        wake = min(wake, _WAKE_S)
        if sub is None:
            await ctx.sleep(wake)
            current = ctx.latest(condition.channel)
            continue
        with anyio.move_on_after(wake):
            _channel, _t, current = await sub.get()
            # Every buffered value counts: a short crossing is not missed.
            for _channel, _t, value in sub.drain():
                current = value
                if condition.holds(current):
                    break
