"""The sink contract: where a run's records go (ARCHITECTURE.md 3.4)."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from capa.components.model import ConfigModel

if TYPE_CHECKING:
    from capa.components.context import SinkContext
    from capa.components.emissions import RunRecord

__all__ = ["Sink"]


class Sink(abc.ABC):
    """Base class of sinks.

    Records (:data:`~capa.RunRecord`) are ``ScalarRows`` (long rows of polled devices),
    ``SampleRows`` (one wide batch per block of a streamed device: ``t_mono_ns`` and a
    column per channel, ``<channel>.raw``, ``<channel>.status``; see
    ``core/docs/bundle-schema.md``), ``DeviceRecords``, ``FrameReceipt`` and
    ``EventRecord``. A sink ignores the kinds it has no use for.

    :meth:`consume` is called on the runtime's data path for every record and must not
    block for long: a sink that does I/O queues the record to its own thread. A sink that
    fails is reported as an event and never blocks or corrupts the run bundle.

    Attributes:
        id: stable dotted id (``capa.bundle``).
        Config: pydantic model of the sink's ``config`` in an experiment file.
    """

    id: ClassVar[str]
    Config: ClassVar[type[ConfigModel]]

    def __init__(self, config: ConfigModel) -> None:
        self.config = config

    @abc.abstractmethod
    async def open(self, ctx: SinkContext) -> None:
        """Prepare to receive the records of one run."""

    @abc.abstractmethod
    def consume(self, record: RunRecord) -> None:
        """Accept one record."""

    @abc.abstractmethod
    async def close(self, run_status: str) -> None:
        """Flush and release everything; ``run_status`` is how the run ended."""
