"""The built-in sink ``capa.bundle``: the run bundle, always on (ARCHITECTURE.md 3.4).

It wraps a :class:`~capa.bundle.writer.BundleWriter`. The runtime opens it with a
:class:`~capa.SinkContext` whose ``bundle_path`` is ``<runs_root>/<run_id>``; the context may
also offer ``manifest_fields``, ``config_files``, ``clock`` and ``config_path`` attributes,
which are passed on to :meth:`BundleWriter.open` when present. After ``open`` the runtime
can reach the writer (metrics for the saturation monitor, the event writer, the run log)
through :attr:`BundleSink.writer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import anyio.to_thread
from pydantic import Field

from capa.components.model import ConfigModel
from capa.components.sink import Sink
from capa.errors import BundleError

if TYPE_CHECKING:
    from capa.bundle.finalize import FinalizeResult
    from capa.bundle.writer import BundleWriter
    from capa.components.context import SinkContext
    from capa.components.emissions import RunRecord

__all__ = ["BundleSink"]


class BundleSinkConfig(ConfigModel):
    """Options of the ``capa.bundle`` sink."""

    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="Longest time recorded data stays un-fsynced."
    )
    queue_size: int = Field(
        1024, ge=1, description="Batches queued before producers block (backpressure)."
    )


class BundleSink(Sink):
    """Records the run into its bundle: Arrow IPC while running, sealed Parquet at the end.

    Channel samples go to ``scalars``, native device rows to ``device_records/<family>``,
    events to ``events.sqlite``, frame receipts to ``video/<camera>.frames``; closing the
    sink finalizes the bundle (sorted zstd Parquet, ``manifest.sha256``, verification).
    """

    id: ClassVar[str] = "capa.bundle"
    Config: ClassVar[type[ConfigModel]] = BundleSinkConfig

    def __init__(self, config: ConfigModel) -> None:
        super().__init__(config)
        self._writer: BundleWriter | None = None
        self.result: FinalizeResult | None = None
        """How finalize went, once :meth:`close` returned."""

    @property
    def writer(self) -> BundleWriter:
        """The bundle writer (after :meth:`open`)."""
        if self._writer is None:
            raise BundleError("the capa.bundle sink is not open")
        return self._writer

    async def open(self, ctx: SinkContext) -> None:
        """Create the bundle at ``ctx.bundle_path`` and start the writer thread."""
        from capa.bundle.writer import BundleWriter

        if ctx.bundle_path is None:
            raise BundleError("the capa.bundle sink needs a bundle path")
        config = self.config
        assert isinstance(config, BundleSinkConfig)
        options: dict[str, Any] = {
            name: getattr(ctx, name)
            for name in ("manifest_fields", "config_files", "clock", "config_path")
            if getattr(ctx, name, None) is not None
        }
        self._writer = await anyio.to_thread.run_sync(
            lambda: BundleWriter.open(
                ctx.bundle_path.parent,  # type: ignore[union-attr]
                run_id=ctx.run_id,
                flush_interval_s=config.flush_interval_s,
                queue_size=config.queue_size,
                **options,
            )
        )

    def consume(self, record: RunRecord) -> None:
        """Queue a record; blocks while the writer's queue is full (backpressure).

        From async code prefer :meth:`consume_async`, which never blocks the event loop.
        """
        self.writer.submit(record)

    async def consume_async(self, record: RunRecord) -> None:
        """Queue a record without blocking the event loop.

        The common case (room in the queue) costs one non-blocking put; only when the
        queue is full is the blocking put moved to a worker thread, so the producer task
        waits (backpressure) while the loop keeps serving everything else.
        """
        writer = self.writer
        if not writer.try_submit(record):
            await anyio.to_thread.run_sync(writer.submit, record)

    async def close(self, run_status: str) -> None:
        """Drain, record ``run_status`` and seal the bundle (off the event loop)."""
        writer = self.writer
        self.result = await anyio.to_thread.run_sync(writer.close, run_status)
