"""Writing a channel on behalf of a procedure or step, recorded as an audit event.

Every device write a method or procedure makes goes through :func:`write_recorded`, so each
leaves one ``*.command.issued`` event with the same metadata (seed 003): ``channel``,
``device``, ``value``, ``step_kind``, ``accepted``, ``issued_by``, ``authorization_id``.
"""

from __future__ import annotations

from typing import Any

import capa

__all__ = ["channel_device", "write_recorded"]


def channel_device(run: capa.RunContext, channel: str) -> str | None:
    """The device a channel's value comes from, or ``None`` when the run does not know it.

    ``plan`` is offered by capa's run context, not by the minimal protocol, so a fake
    context in a unit test may lack it.
    """
    plan: Any = getattr(run, "plan", None)
    found = plan.channel(channel) if plan is not None else None
    return str(found.device) if found is not None else None


async def write_recorded(
    run: capa.RunContext,
    channel: str,
    value: float,
    *,
    event_kind: str,
    step_kind: str,
    issued_by: str,
    authorization_id: str,
    source: str = "",
) -> capa.CommandResult:
    """Write ``value`` (calibrated units) to ``channel`` and record the command event.

    The event is written whether the device accepted the value or refused it (``accepted``
    says which), and also when the write raised (``accepted = false`` and the error), so
    the events table shows every attempt; exceptions propagate to the caller.
    """
    meta: dict[str, Any] = {
        "channel": channel,
        "device": channel_device(run, channel),
        "value": float(value),
        "step_kind": step_kind,
        "accepted": False,
        "issued_by": issued_by,
        "authorization_id": authorization_id,
    }
    try:
        result = await run.write_channel(channel, value, authorization_id=authorization_id)
    except Exception as exc:
        meta["detail"] = f"{type(exc).__name__}: {exc}"
        run.events.emit(
            event_kind,
            f"{channel} = {value:g} failed: {exc}",
            severity="error",
            source=source,
            metadata=meta,
        )
        raise
    meta["accepted"] = result.accepted
    meta["detail"] = result.detail
    run.events.emit(
        event_kind,
        f"{channel} = {value:g}" + ("" if result.accepted else f" refused: {result.detail}"),
        severity="info" if result.accepted else "warning",
        source=source,
        metadata=meta,
    )
    return result
