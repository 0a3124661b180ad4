"""ManualClient: one way to command a device, whether or not a run is going on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capa.components.adapter import Command, CommandResult
from capa.errors import ConductorStateError
from capa.runtime.conductor import Conductor
from capa.runtime.pool import WorkerPool

__all__ = ["ManualClient"]


class ManualClient:
    """Routes manual commands to the live run when one accepts them, else to the pool.

    During a run (conductor PREPARING or RUNNING) a command goes through the conductor,
    so it is recorded in the bundle's events with its authorization. Between runs — or
    while a run is draining or sealing, when it no longer accepts commands — it goes
    straight to the worker pool, and because nothing records it there, it must say who
    confirmed it.

    Args:
        pool: the open worker pool.
        conductor: returns the current run's conductor, or ``None`` between runs. It is a
            callable because conductors live one run each.
        command_timeout_s: bound on a command sent to the pool directly.
    """

    def __init__(
        self,
        pool: WorkerPool,
        conductor: Callable[[], Conductor | None] = lambda: None,
        *,
        command_timeout_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._conductor = conductor
        self._timeout = command_timeout_s

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
        return await self._pool.dispatch(device, command, self._timeout)

    async def snapshot(self, device: str) -> Any:
        """Status fields of ``device``, by the same routing as :meth:`dispatch`."""
        conductor = self._live()
        if conductor is not None:
            return await conductor.snapshot(device)
        return await self._pool.snapshot(device, self._timeout)
