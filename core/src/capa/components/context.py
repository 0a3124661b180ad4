"""What a running procedure, step or sink can see of the run.

These are protocols: the runtime provides the implementations, tests may provide fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import anyio

    from capa.clock import RunClock
    from capa.components.adapter import Command, CommandResult
    from capa.components.emissions import EventSeverity
    from capa.components.step import Step

__all__ = ["ChannelView", "EventWriter", "MethodRunner", "RunContext", "SinkContext"]


class ChannelView(Protocol):
    """Latest calibrated value per channel, and names of the channels in the run."""

    def names(self) -> list[str]:
        """Every channel the run records or watches."""

    def latest(self, channel: str) -> float | None:
        """Most recent calibrated value, or ``None`` if nothing arrived yet."""


class EventWriter(Protocol):
    """Writes rows of ``events.sqlite``."""

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: EventSeverity | str = "info",
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event stamped with the run clock."""


class MethodRunner(Protocol):
    """What a method executor offers (capa-procedures provides one over ``ctx.steps``)."""

    @property
    def current_index(self) -> int | None:
        """Index of the step being executed, for progress display."""

    async def run_all(self) -> None:
        """Execute every remaining step in order."""

    async def advance_until(self, index: int) -> None:
        """Execute steps up to (not including) ``index``."""


class RunContext(Protocol):
    """Everything a procedure (and, through it, a method step) may use during a run."""

    @property
    def run_id(self) -> str:
        """The run's id, also the bundle directory name."""

    @property
    def clock(self) -> RunClock:
        """The run clock."""

    @property
    def experiment(self) -> Any:
        """The validated experiment configuration."""

    @property
    def channels(self) -> ChannelView:
        """Latest values of the run's channels."""

    @property
    def events(self) -> EventWriter:
        """The run's event log."""

    @property
    def log(self) -> Any:
        """A structlog logger bound to ``run_id`` (and the procedure id)."""

    @property
    def method(self) -> Any:
        """The validated method (``name``, ``description``, ``steps``), or ``None``."""

    @property
    def steps(self) -> Sequence[Step]:
        """The method's steps, validated and instantiated, in order (empty without one)."""

    @property
    def progress(self) -> dict[str, Any]:
        """Mutable progress the run shows on a terminal (e.g. ``{"step": "2/7 ramp"}``)."""

    @property
    def custom(self) -> dict[str, Any]:
        """Entries merged into the manifest's ``custom`` block when the bundle is sealed.

        Mutable: e.g. the recipe runner puts the operator's notes here.
        """

    @property
    def external_stop(self) -> anyio.Event:
        """Set when the operator (or a signal) asks the run to stop."""

    @property
    def bundle_path(self) -> Path | None:
        """Directory of the run bundle (artifacts may be copied into it)."""

    async def dispatch(self, device: str, command: Command) -> CommandResult:
        """Send a command to a configured device; recorded as an event."""

    async def run_child(
        self,
        procedure_id: str,
        config: Mapping[str, Any],
        *,
        sample_id: str | None = None,
        custom: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run a procedure as a child run with its own bundle on this run's devices.

        Returns an object with ``run_id``, ``bundle_path``, ``run_status``,
        ``bundle_status``, ``integrity_status`` and ``exit_reason``.
        """

    async def write_channel(
        self, channel: str, value: float, *, authorization_id: str | None = None
    ) -> CommandResult:
        """Write a calibrated value to a writable channel.

        The channel is mapped to its device and field and the value is passed through the
        inverse of the channel's calibration before ``write {field, value}`` is sent.
        """


class SinkContext(Protocol):
    """What a sink learns when a run opens."""

    @property
    def run_id(self) -> str:
        """The run's id."""

    @property
    def bundle_path(self) -> Path | None:
        """Directory of the run bundle."""
