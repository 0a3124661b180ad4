"""ManualClient: one way to command a device, whether or not a run is going on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from capa.components.adapter import Command, CommandResult
from capa.errors import ConductorStateError
from capa.runtime.conductor import Conductor
from capa.runtime.plan import RunPlan
from capa.runtime.pool import WorkerPool
from capa.runtime.safety import InterlockGate

__all__ = ["ManualClient"]


class ManualClient:
    """Routes manual commands to the live run when one accepts them, else to the pool.

    During a run (conductor PREPARING or RUNNING) a command goes through the conductor,
    so it is recorded in the bundle's events with its authorization. Between runs — or
    while a run is draining or sealing, when it no longer accepts commands — it goes
    straight to the worker pool, and because nothing records it there, it must say who
    confirmed it.

    Interlocks apply on both routes: the run checks them itself; between runs the client
    checks the ``plan``'s interlocks and refuses (``accepted=False``, the reason in
    ``detail``) before anything reaches the device.

    Args:
        pool: the open worker pool.
        conductor: returns the current run's conductor, or ``None`` between runs. It is a
            callable because conductors live one run each.
        command_timeout_s: bound on a command sent to the pool directly.
        plan: the rig's run plan, whose interlocks hold between runs too.
    """

    def __init__(
        self,
        pool: WorkerPool,
        conductor: Callable[[], Conductor | None] = lambda: None,
        *,
        command_timeout_s: float = 10.0,
        plan: RunPlan | None = None,
    ) -> None:
        self._pool = pool
        self._conductor = conductor
        self._timeout = command_timeout_s
        self._plan = plan
        self._gate = InterlockGate(plan.interlocks, plan.channels) if plan is not None else None

    def _live(self) -> Conductor | None:
        conductor = self._conductor()
        if conductor is not None and conductor.state.permits_dispatch:
            return conductor
        return None

    async def dispatch(
        self, device: str, command: Command, *, confirmed_by: str | None = None
    ) -> CommandResult:
        """Send ``command`` to ``device`` through the run or, between runs, the pool.

        Raises:
            ConductorStateError: between runs without ``confirmed_by``.
            UnknownDeviceError: ``device`` is not configured.
        """
        conductor = self._live()
        if conductor is not None:
            return await conductor.dispatch(device, command)
        if not confirmed_by:
            raise ConductorStateError(
                f"manual command {command.name!r} to {device!r} between runs needs "
                "confirmed_by (who approved it); nothing records it otherwise"
            )
        refusal = self._check_interlocks(device, command)
        if refusal is not None:
            return refusal
        result = await self._pool.dispatch(device, command, self._timeout)
        if result.accepted and self._gate is not None and self._plan is not None:
            with contextlib.suppress(KeyError):  # a device the plan does not know
                self._gate.accepted(self._plan.device(device), command, time.monotonic_ns())
        return result

    def _check_interlocks(self, device: str, command: Command) -> CommandResult | None:
        if self._gate is None or self._plan is None:
            return None
        try:
            plan = self._plan.device(device)
        except KeyError:
            return None  # the pool raises UnknownDeviceError for it
        # Between runs there is no channel registry: the rate limit's first reference is
        # the previous accepted manual write.
        reason = self._gate.check(plan, command, lambda _name: None, time.monotonic_ns())
        if reason is None:
            return None
        return CommandResult(False, f"interlock: {reason}")

    async def snapshot(self, device: str) -> Any:
        """Status fields of ``device``, by the same routing as :meth:`dispatch`."""
        conductor = self._live()
        if conductor is not None:
            return await conductor.snapshot(device)
        return await self._pool.snapshot(device, self._timeout)
