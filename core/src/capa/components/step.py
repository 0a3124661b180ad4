"""The method-step contract: one kind of step in a ``*.method.toml`` (ARCHITECTURE.md 3.3)."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from capa.components.model import ConfigModel

if TYPE_CHECKING:
    from capa.components.adapter import CommandResult
    from capa.components.context import RunContext

__all__ = ["Step", "StepConfig", "StepContext"]


class StepConfig(ConfigModel):
    """Fields every step kind accepts, whatever its own model adds."""

    notes: str = ""


class StepContext(Protocol):
    """What the method executor gives a step while it runs."""

    @property
    def run(self) -> RunContext:
        """The run the step belongs to."""

    @property
    def index(self) -> int:
        """The step's position in the method."""

    def latest(self, channel: str) -> float | None:
        """Latest calibrated value of a channel."""

    async def write_channel(self, channel: str, value: float) -> CommandResult:
        """Write a calibrated value to a writable channel (inverse-calibrated first)."""

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the run is stopped first; returns ``False`` when stopped early."""

    @property
    def stop_requested(self) -> bool:
        """True once the run was asked to stop."""


class Step(abc.ABC):
    """Base class of method-step kinds.

    Attributes:
        kind: the ``kind`` value in a method file (``ramp``); the step's stable id.
        Config: the step's fields; subclass :class:`StepConfig`.
        writes_target: whether the step writes its target channel (validation then
            requires the channel to be writable).
    """

    kind: ClassVar[str]
    Config: ClassVar[type[StepConfig]]
    writes_target: ClassVar[bool] = False

    def __init__(self, config: StepConfig, index: int) -> None:
        self.config = config
        self.index = index

    def channels(self) -> tuple[str, ...]:
        """Channels this step reads or writes, for reference validation."""
        target: Any = getattr(self.config, "target", None)
        return (target,) if isinstance(target, str) else ()

    def written_channels(self) -> tuple[str, ...]:
        """Channels this step writes, which must be writable."""
        return self.channels() if self.writes_target else ()

    def safe_targets(self) -> dict[str, float]:
        """Channel -> value that brings the rig to a safe state, if this step knows one.

        A safe-shutdown step kind returns its targets; the run's safety monitor writes
        them itself when an alarm or a watchdog asks for a safe shutdown, so the rig is
        made safe even when the procedure is stuck. Other step kinds return ``{}``.
        """
        return {}

    @abc.abstractmethod
    async def execute(self, ctx: StepContext) -> None:
        """Carry the step out; return early when the run is stopped."""
