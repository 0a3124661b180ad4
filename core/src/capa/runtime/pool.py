"""The worker pool: one worker per resource, for the lifetime of a configuration.

The pool outlives runs: devices open once, several runs (a batch) sample through the same
workers, and manual commands reach devices between runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio

from capa.clock import RunClock
from capa.components.adapter import Adapter, Command, CommandResult
from capa.errors import DeviceError, PoolStateError, UnknownDeviceError
from capa.runtime.plan import DevicePlan
from capa.runtime.worker import EmissionHandler, ErrorHandler, Worker

__all__ = ["PoolState", "WorkerPool"]

# Closing devices that did open when the open was cancelled: short, the operator is
# waiting for the stop.
_CANCELLED_CLOSE_S = 1.0


class PoolState(enum.StrEnum):
    """CLOSED until :meth:`WorkerPool.open` succeeds; OPEN until closed again."""

    CLOSED = "closed"
    OPEN = "open"


class WorkerPool:
    """Workers grouped by resource id, opened in parallel, closed in reverse order."""

    def __init__(self, devices: Iterable[DevicePlan]) -> None:
        self.devices = tuple(devices)
        self.state = PoolState.CLOSED
        by_resource: dict[str, dict[str, Adapter]] = {}
        for d in self.devices:
            by_resource.setdefault(d.resource_id, {})[d.name] = d.adapter(d.name, d.params)
        self.workers = [Worker(rid, adapters) for rid, adapters in by_resource.items()]
        self._by_device = {name: w for w in self.workers for name in w.adapters}
        self.abandoned: list[str] = []

    @property
    def device_names(self) -> list[str]:
        """Configured device names, in file order."""
        return [d.name for d in self.devices]

    def devices_on(self, resource_id: str) -> list[str]:
        """Names of the devices sharing ``resource_id``."""
        return [d.name for d in self.devices if d.resource_id == resource_id]

    def worker_for(self, device: str) -> Worker:
        """The worker that owns ``device``."""
        try:
            return self._by_device[device]
        except KeyError:
            raise UnknownDeviceError(device, self.device_names) from None

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Open every worker in parallel; on any failure close the opened ones, re-raise.

        Raises:
            DeviceError: naming the resource (and the adapter's own message).
        """
        if self.state is not PoolState.CLOSED:
            raise PoolStateError("worker pool is already open")
        failures: dict[int, BaseException] = {}
        opened: list[int] = []

        async def open_one(index: int, worker: Worker) -> None:
            try:
                await worker.open()
                opened.append(index)
            except Exception as exc:
                failures[index] = exc

        try:
            async with anyio.create_task_group() as tg:
                for index, worker in enumerate(self.workers):
                    tg.start_soon(open_one, index, worker)
        except BaseException:
            # Cancelled (an operator stop during open): release what did open, briefly;
            # workers still inside a blocking open abandoned themselves.
            with anyio.CancelScope(shield=True):
                for index in sorted(opened, reverse=True):
                    await self.workers[index].close(_CANCELLED_CLOSE_S)
            raise
        if failures:
            # Undo in reverse order of declaration so shared buses are released the
            # way they were acquired; then report the first failure as declared.
            for index in sorted(opened, reverse=True):
                await self.workers[index].close()
            index = min(failures)
            worker, exc = self.workers[index], failures[index]
            names = ", ".join(worker.adapters)
            detail = str(exc) if isinstance(exc, DeviceError) else f"{type(exc).__name__}: {exc}"
            raise DeviceError(f"{names} ({worker.resource_id}): could not open: {detail}") from exc
        self.state = PoolState.OPEN

    async def close(self, grace_s: float = 5.0) -> list[str]:
        """Close every worker in reverse order; returns resources that had to be abandoned."""
        abandoned = []
        for worker in reversed(self.workers):
            if not await worker.close(grace_s):
                abandoned.append(worker.resource_id)
        self.state = PoolState.CLOSED
        return abandoned

    def arm_all(
        self,
        clock: RunClock,
        handler: EmissionHandler,
        on_error: ErrorHandler,
        latest: Callable[[str], float | None],
        bundle_path: Path | None = None,
    ) -> None:
        """Bind every worker to a run."""
        if self.state is not PoolState.OPEN:
            raise PoolStateError("arm_all() needs an open pool")
        for worker in self.workers:
            worker.arm(clock, handler, on_error, latest, bundle_path)

    def disarm_unstarted(self) -> None:
        """Unbind workers of a run that never began sampling."""
        for worker in self.workers:
            if worker.state.value == "armed":
                worker.disarm()

    async def begin_sampling_all(self) -> None:
        """Start sampling on every worker (in parallel).

        Raises:
            DeviceError: (inside the task group's exception group) naming the devices of
                each worker whose adapters failed to start.
        """

        async def begin(worker: Worker) -> None:
            try:
                await worker.begin_sampling()
            except Exception as exc:
                names = ", ".join(worker.adapters)
                raise DeviceError(
                    f"{names} ({worker.resource_id}): could not start sampling: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

        async with anyio.create_task_group() as tg:
            for worker in self.workers:
                tg.start_soon(begin, worker)

    async def stop_sampling_all(self, grace_s: float) -> list[str]:
        """Stop every worker in parallel; returns the resources abandoned after ``grace_s``."""
        abandoned: list[str] = []

        async def stop_one(worker: Worker) -> None:
            if worker.state.value != "sampling":
                return
            if not await worker.stop_sampling(grace_s):
                abandoned.append(worker.resource_id)

        async with anyio.create_task_group() as tg:
            for worker in self.workers:
                tg.start_soon(stop_one, worker)
        self.abandoned.extend(abandoned)
        return abandoned

    # ------------------------------------------------------------------ commands
    async def dispatch(self, device: str, command: Command, timeout_s: float) -> CommandResult:
        """Send ``command`` to ``device`` through its worker."""
        if self.state is not PoolState.OPEN:
            raise PoolStateError(f"cannot command {device!r}: the worker pool is not open")
        return await self.worker_for(device).dispatch(device, command, timeout_s)

    async def snapshot(self, device: str, timeout_s: float = 5.0) -> Any:
        """Status fields of ``device``."""
        if self.state is not PoolState.OPEN:
            raise PoolStateError(f"cannot read {device!r}: the worker pool is not open")
        return await self.worker_for(device).snapshot(device, timeout_s)

    def diagnostics(self) -> dict[str, Any]:
        """Per-worker counters for the manifest."""
        return {
            w.resource_id: {
                "devices": sorted(w.adapters),
                "state": w.state.value,
                "emissions": w.stats.emissions,
                "samples": w.stats.samples,
                "commands": w.stats.commands,
                "read_errors": w.stats.read_errors,
                "emit_errors": w.stats.emit_errors,
                "stop_errors": w.stats.stop_errors,
                "close_errors": list(w.stats.close_errors),
                "late_polls": w.stats.late_polls,
                "abandoned": w.stats.abandoned,
            }
            for w in self.workers
        }

    def blocked_resources(self) -> list[tuple[str, float]]:
        """``(resource_id, seconds)`` of workers blocked handing emissions to the writer.

        Longest-blocked first; a worker with no hand-off in progress is not listed.
        """
        blocked = [(w.resource_id, w.stats.blocked_for_s()) for w in self.workers]
        found = [(rid, s) for rid, s in blocked if s is not None]
        return sorted(found, key=lambda item: -item[1])

    def adapters(self) -> Sequence[tuple[str, Adapter]]:
        """``(device name, adapter)`` pairs in file order."""
        return [(d.name, self.worker_for(d.name).adapters[d.name]) for d in self.devices]
