"""The :class:`~capa.RunContext` a procedure receives from the conductor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from capa.clock import RunClock
from capa.components.adapter import Command, CommandResult
from capa.components.emissions import EventSeverity
from capa.errors import ConfigError
from capa.runtime.channels import ChannelRegistry
from capa.runtime.plan import RunPlan

if TYPE_CHECKING:
    from capa.components.step import Step
    from capa.runtime.results import HeadlessResult
    from capa.runtime.session import RunSession

__all__ = ["ConductorRunContext", "ProcedureEvents"]


class ProcedureEvents:
    """An :class:`~capa.EventWriter` whose default source is the procedure."""

    def __init__(self, session: RunSession | None, default_source: str, log: Any) -> None:
        self._session = session
        self._source = default_source
        self._log = log

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = "info",
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event; before the bundle exists (preflight) it goes to the log."""
        if self._session is None or self._session.bundle_path is None:
            self._log.info(
                "event.before_bundle",
                kind=kind,
                message=message,
                severity=str(severity),
                metadata=dict(metadata or {}),
            )
            return
        self._session.emit(
            kind, message, severity=severity, source=source or self._source, metadata=metadata
        )


class ConductorRunContext:
    """Everything a procedure may use during a run; built by the conductor."""

    def __init__(
        self,
        *,
        plan: RunPlan,
        clock: RunClock,
        registry: ChannelRegistry,
        session: RunSession,
        dispatch: Callable[[str, Command], Awaitable[CommandResult]],
        external_stop: anyio.Event,
        log: Any,
        run_child: Callable[..., Awaitable[HeadlessResult]] | None = None,
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._registry = registry
        self._session = session
        self._dispatch = dispatch
        self._external_stop = external_stop
        self._log = log
        self._run_child = run_child
        self._events = ProcedureEvents(session, f"procedure:{plan.procedure.id}", log)
        self.progress: dict[str, Any] = {}
        self.custom: dict[str, Any] = {}
        """Merged into the manifest's ``custom`` block when the bundle is sealed."""

    def bind_log(self, log: Any) -> None:
        """Switch to the run's own logger once the bundle (and ``run.log``) exists."""
        self._log = log
        self._events = ProcedureEvents(self._session, f"procedure:{self._plan.procedure.id}", log)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._session.run_id

    @property
    def clock(self) -> RunClock:
        """The run clock."""
        return self._clock

    @property
    def experiment(self) -> Any:
        """The validated experiment."""
        return self._plan.experiment

    @property
    def channels(self) -> ChannelRegistry:
        """Latest values of the run's channels (and subscriptions)."""
        return self._registry

    @property
    def events(self) -> ProcedureEvents:
        """The run's event log."""
        return self._events

    @property
    def log(self) -> Any:
        """Structlog logger bound to the run and the procedure."""
        return self._log

    @property
    def method(self) -> Any:
        """The validated method, or ``None``."""
        return self._plan.method

    @property
    def steps(self) -> Sequence[Step]:
        """The method's step instances, in order."""
        return self._plan.steps

    @property
    def external_stop(self) -> anyio.Event:
        """Set when the run is asked to stop."""
        return self._external_stop

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory (``None`` during preflight)."""
        return self._session.bundle_path

    @property
    def plan(self) -> RunPlan:
        """The resolved run plan (devices, channels, calibrations)."""
        return self._plan

    async def dispatch(self, device: str, command: Command) -> CommandResult:
        """Send a command to a device; the conductor records it as an event."""
        return await self._dispatch(device, command)

    async def run_child(
        self,
        procedure_id: str,
        config: Mapping[str, Any],
        *,
        sample_id: str | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> HeadlessResult:
        """Run another procedure as a child run with its own sealed bundle.

        The child uses this run's devices; this run's own sampling pauses while the
        child records, and stopping this run stops the child (aborted, sealed).

        Raises:
            ConductorStateError: child runs are not available (e.g. inside a child).
            ConfigError: unknown procedure id, invalid config, or recursion.
        """
        if self._run_child is None:
            from capa.errors import ConductorStateError

            raise ConductorStateError("child runs are not available in this run")
        return await self._run_child(procedure_id, config, sample_id=sample_id, custom=custom)

    async def write_channel(
        self, channel: str, value: float, *, authorization_id: str | None = None
    ) -> CommandResult:
        """Inverse-calibrate ``value`` and write it to the channel's device field."""
        plan = self._plan.channel(channel)
        if plan is None:
            names = ", ".join(c.name for c in self._plan.channels)
            raise ConfigError(f"unknown channel {channel!r}; channels: {names}")
        if not plan.writable:
            raise ConfigError(f"channel {channel!r} ({plan.device}.{plan.field}) is not writable")
        import numpy as np

        raw = np.asarray(plan.to_raw(np.array([float(value)])), dtype=np.float64)
        command = Command.write(plan.field, float(raw[0]), authorization_id)
        return await self._dispatch(plan.device, command)
