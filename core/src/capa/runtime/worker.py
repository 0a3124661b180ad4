"""A worker: one hardware resource, its adapters, and a thread running their event loop.

Every resource (a serial port, a DAQ chassis, a camera) gets its own thread hosting its
own asyncio loop. Adapter coroutines run there, so an adapter built on a blocking library
may block inside them without delaying the run's main loop or any other resource — and a
device whose read hangs stalls only its own worker, which the pool can abandon.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from capa.clock import RunClock
from capa.components.adapter import Acquisition, Adapter, Command, CommandResult
from capa.components.emissions import Emission, SampleBatch
from capa.errors import UnknownDeviceError, WorkerStateError
from capa.runtime.state import WorkerState

__all__ = ["DeviceContext", "EmissionHandler", "Worker", "WorkerStats"]

T = TypeVar("T")

# Longest wait handed to threading / asyncio timers. A grace period of 2**63 s (or inf)
# must mean "wait as long as it takes", not OverflowError inside Thread.join or the
# event loop's timer heap; a week is longer than any stop should ever take.
MAX_WAIT_S = 7 * 24 * 3600.0


# Rollback of a failed open: long enough for adapters to close their handles.
_UNDO_FAILED_S = 2.0
# Rollback of a cancelled open (operator stop): the stop must feel immediate.
_UNDO_CANCELLED_S = 0.1


def _is_cancellation(exc: BaseException) -> bool:
    # The runtime runs anyio on the asyncio backend: its cancellation is CancelledError.
    return isinstance(exc, asyncio.CancelledError)


def bounded_wait(seconds: float) -> float:
    """``seconds`` clamped to ``[0, MAX_WAIT_S]`` (NaN counts as 0): safe for any timer."""
    if not seconds > 0:  # also catches NaN
        return 0.0
    return min(float(seconds), MAX_WAIT_S)


EmissionHandler = Callable[[str, Emission], None]
"""Receives ``(device name, emission)`` on the worker's thread (the channel pipeline)."""

ErrorHandler = Callable[[str, BaseException], None]
"""Receives ``(device name, exception)`` when an adapter's read or stream fails."""


@dataclass(slots=True)
class WorkerStats:
    """Counters for the runtime diagnostics in the manifest."""

    emissions: int = 0
    samples: int = 0
    commands: int = 0
    read_errors: int = 0
    emit_errors: int = 0
    stop_errors: int = 0
    late_polls: int = 0
    abandoned: bool = False
    close_errors: list[str] = field(default_factory=list)
    # The hand-off of emissions to the pipeline (which blocks while the writer is behind):
    # how long each took, and since when one has been in progress. The saturation monitor
    # names the resources whose producers are blocked there (seed 003 ``resource_id``).
    handoff_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    handoff_total_s: float = 0.0
    handoff_since: float | None = None
    last_handoff: float | None = None
    """``time.monotonic`` when the last hand-off ended (the age of the newest emission)."""
    _inflight: int = 0
    # Adapters that emit from their own threads (cameras) share these counters.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handoff_started(self) -> float:
        """Mark an emission hand-off as begun; returns its start (``time.monotonic``)."""
        now = time.monotonic()
        with self._lock:
            if self._inflight == 0:
                self.handoff_since = now
            self._inflight += 1
        return now

    def handoff_ended(self, started: float) -> None:
        """Mark a hand-off begun at ``started`` as done (accepted or failed)."""
        ended = time.monotonic()
        took = ended - started
        with self._lock:
            self.last_handoff = ended
            self._inflight -= 1
            if self._inflight == 0:
                self.handoff_since = None
            self.handoff_total_s += took
            self.handoff_ms.append(took * 1e3)

    def handoff_latencies_ms(self) -> list[float]:
        """A copy of the recent hand-off durations (a producer may be appending)."""
        with self._lock:
            return list(self.handoff_ms)

    def blocked_for_s(self) -> float | None:
        """How long the oldest hand-off still in progress has been waiting, or ``None``."""
        since = self.handoff_since
        return None if since is None else time.monotonic() - since


@dataclass(slots=True)
class DeviceContext:
    """The :class:`~capa.AdapterContext` a device gets while it samples."""

    device: str
    clock: RunClock
    _handler: EmissionHandler
    _latest: Callable[[str], float | None]
    _stats: WorkerStats = field(repr=False)
    bundle_path: Path | None = None
    _on_error: ErrorHandler | None = field(default=None, repr=False)

    def emit(self, emission: Emission) -> None:
        """Forward one emission to the run's pipeline (blocks while the writer is behind).

        An emission the pipeline cannot take (a malformed batch, a writer that stopped)
        is a failure of this device: it is reported to the conductor, which records an
        event and applies the device's ``on_failure`` — the adapter's own loop goes on,
        so one bad batch never silently ends a polling or streaming task.
        """
        self._stats.emissions += 1
        if isinstance(emission, SampleBatch):
            t = emission.t_mono_ns
            # A 0-d time column has no len(); the pipeline rejects it with a clear message.
            self._stats.samples += len(t) if getattr(t, "ndim", 1) and hasattr(t, "__len__") else 1
        started = self._stats.handoff_started()
        try:
            self._handler(self.device, emission)
        except Exception as exc:
            self._stats.emit_errors += 1
            if self._on_error is None:
                raise  # no run to report to: the caller must see it
            self._on_error(self.device, exc)
        finally:
            self._stats.handoff_ended(started)

    def latest(self, channel: str) -> float | None:
        """Latest calibrated value of a run channel."""
        return self._latest(channel)


class Worker:
    """Owns the adapters of one resource and the thread their coroutines run on.

    All public coroutines are awaited from the run's main loop; they hop onto the
    worker's loop and back.
    """

    def __init__(self, resource_id: str, adapters: Mapping[str, Adapter]) -> None:
        self.resource_id = resource_id
        self.adapters = dict(adapters)
        self.state = WorkerState.CLOSED
        self.stats = WorkerStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[tuple[str, asyncio.Future[None]]] = []
        self._clock: RunClock | None = None
        self._handler: EmissionHandler | None = None
        self._on_error: ErrorHandler | None = None
        self._latest: Callable[[str], float | None] = lambda _c: None
        self._bundle_path: Path | None = None

    def __repr__(self) -> str:
        return f"Worker({self.resource_id!r}, {sorted(self.adapters)}, {self.state})"

    # ------------------------------------------------------------------ thread plumbing
    def _start_thread(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                except Exception as exc:  # an adapter's generator failed to close
                    self.stats.close_errors.append(f"shutdown_asyncgens: {_brief(exc)}")
                    _log().warning("worker.asyncgen_close_failed", error=_brief(exc))
                loop.close()

        # Daemon: a worker wedged in a driver call must not keep the process alive
        # after the run has been sealed and the pool has given up on it.
        self._thread = threading.Thread(
            target=main, name=f"capa-worker {self.resource_id}", daemon=True
        )
        self._thread.start()
        ready.wait()

    async def _on_worker(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the worker's loop and await its result from the caller's loop."""
        assert self._loop is not None, "worker thread not started"
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    async def _on_worker_within(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Like :meth:`_on_worker`, bounded by ``timeout_s`` (TimeoutError after it).

        The coroutine is handed to the worker's loop *before* the wait starts: wrapping
        ``_on_worker(coro)`` in ``asyncio.wait_for`` instead would, with a zero timeout,
        cancel the wrapper before it ran and leave ``coro`` created but never awaited.
        On timeout the worker-side task is cancelled (a wedged thread ignores that).
        """
        assert self._loop is not None, "worker thread not started"
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), bounded_wait(timeout_s))

    def _transition(self, target: WorkerState) -> None:
        self.state.check_transition(target, self.resource_id)
        self.state = target

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Start the thread and open every adapter on it (in declaration order)."""
        self.state.check_transition(WorkerState.IDLE, self.resource_id)
        self._start_thread()
        opened: list[Adapter] = []
        try:
            for adapter in self.adapters.values():
                await self._on_worker(adapter.open())
                opened.append(adapter)
        except BaseException as exc:
            # A failed open waits a little for the rollback; a cancelled one (Ctrl-C
            # during open) must not: the thread may be blocked in a driver's open call,
            # and nothing queued behind it runs until that call returns.
            bound = _UNDO_CANCELLED_S if _is_cancellation(exc) else _UNDO_FAILED_S
            with anyio.CancelScope(shield=True):  # the rollback must run even when cancelled
                await self._undo_open(opened, bound, exc)
            raise
        self._transition(WorkerState.IDLE)

    async def _undo_open(
        self, opened: Sequence[Adapter], bound_s: float, cause: BaseException
    ) -> None:
        """Close what did open and end the thread, waiting at most ``bound_s`` overall.

        A thread that does not end in time (stuck in a blocking open) is abandoned: it is
        a daemon and holds nothing the run needs.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound_s

        async def close_opened() -> None:
            for adapter in reversed(opened):
                try:
                    await adapter.close()
                except Exception as close_exc:
                    # Reported with the open failure that caused the rollback.
                    cause.add_note(
                        f"closing {adapter.name} after it also failed: {_brief(close_exc)}"
                    )

        if opened:
            with contextlib.suppress(TimeoutError):
                await self._on_worker_within(close_opened(), bound_s)
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            # Join from a helper thread: joining here would block the caller's loop.
            await asyncio.to_thread(self._thread.join, max(0.0, deadline - loop.time()))
        if self._thread is not None and self._thread.is_alive():
            self.stats.abandoned = True

    async def close(self, grace_s: float = 5.0) -> bool:
        """Close every adapter (reverse order) and end the thread; ``False`` if abandoned."""
        if self.state is WorkerState.CLOSED:
            return True
        if self.stats.abandoned:
            self.state = WorkerState.CLOSED
            return False
        self._transition(WorkerState.CLOSED)

        async def close_all() -> None:
            for name, adapter in reversed(list(self.adapters.items())):
                try:
                    await adapter.close()
                except Exception as exc:
                    # After the run: nothing to fail any more, but it is kept and logged
                    # (pool diagnostics) and the other adapters still get closed.
                    self.stats.close_errors.append(f"{name}: {_brief(exc)}")
                    _log().warning("worker.adapter_close_failed", device=name, error=_brief(exc))

        try:
            await self._on_worker_within(close_all(), grace_s)
        except TimeoutError:
            self.stats.abandoned = True
            return False
        self._stop_thread(timeout_s=grace_s)
        return True

    def _stop_thread(self, timeout_s: float) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(bounded_wait(timeout_s))

    def arm(
        self,
        clock: RunClock,
        handler: EmissionHandler,
        on_error: ErrorHandler,
        latest: Callable[[str], float | None],
        bundle_path: Path | None = None,
    ) -> None:
        """Bind the worker to a run (IDLE → ARMED); nothing samples yet."""
        self._transition(WorkerState.ARMED)
        self._clock, self._handler, self._on_error, self._latest = clock, handler, on_error, latest
        self._bundle_path = bundle_path

    def disarm(self) -> None:
        """Unbind from a run that never started sampling (ARMED → IDLE)."""
        self._transition(WorkerState.IDLE)
        self._handler = self._on_error = None

    async def begin_sampling(self) -> None:
        """Start every adapter and its polling or streaming task (ARMED → SAMPLING)."""
        self._transition(WorkerState.SAMPLING)
        await self._on_worker(self._begin())

    async def _begin(self) -> None:
        assert self._clock is not None
        assert self._handler is not None
        self._stop = asyncio.Event()
        self._tasks = []
        bodies: list[tuple[str, Coroutine[Any, Any, None]]] = []
        try:
            await self._start_adapters(bodies)
        except BaseException:
            for _name, body in bodies:
                body.close()  # never started: no "coroutine was never awaited"
            raise
        # The tasks are created one loop turn later, after this coroutine's result is on
        # its way to the caller: a stream that never yields (a driver loop that blocks)
        # then stalls only this worker — which stop_sampling abandons after the grace —
        # and never the run waiting for sampling to begin.
        asyncio.get_running_loop().call_soon(self._spawn, bodies)

    async def _start_adapters(self, bodies: list[tuple[str, Coroutine[Any, Any, None]]]) -> None:
        assert self._clock is not None
        assert self._handler is not None
        for name, adapter in self.adapters.items():
            ctx = DeviceContext(
                name,
                self._clock,
                self._handler,
                self._latest,
                self.stats,
                self._bundle_path,
                self._on_error,
            )
            await adapter.start(ctx)
            if adapter.sampling() is Acquisition.STREAMED:
                body: Coroutine[Any, Any, None] = self._guard(name, adapter.stream(ctx))
            else:
                body = self._poll(name, adapter, ctx)
            bodies.append((name, body))

    def _spawn(self, bodies: list[tuple[str, Coroutine[Any, Any, None]]]) -> None:
        self._tasks = [(name, asyncio.ensure_future(body)) for name, body in bodies]

    async def _guard(self, name: str, body: Awaitable[None]) -> None:
        try:
            await body
        except Exception as exc:
            self._report(name, exc)

    async def _poll(self, name: str, adapter: Adapter, ctx: DeviceContext) -> None:
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        interval = adapter.poll_interval_s()
        due = loop.time()
        while not self._stop.is_set():
            try:
                # list(): a read that returns something other than a sequence of
                # emissions is this device's failure, not a polling task that dies.
                emissions: Sequence[Emission] = list(await adapter.read())
            except Exception as exc:
                self._report(name, exc)
                emissions = ()
            for emission in emissions:
                ctx.emit(emission)  # reports its own failures (see DeviceContext.emit)
            # Schedule on a fixed grid (no drift); a tick that is already past is
            # skipped rather than fired in a burst.
            due += interval
            now = loop.time()
            if due < now:
                self.stats.late_polls += 1
                due = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), due - now)

    async def stop_sampling(self, grace_s: float) -> bool:
        """Stop sampling (SAMPLING → DRAINING → IDLE); ``False`` if the worker is abandoned.

        The worker gets ``grace_s`` seconds to stop its adapters and let the polling and
        streaming tasks return. A worker whose thread is wedged (a read blocking in a
        driver) cannot be interrupted from outside; it is abandoned instead, so the run
        can still be sealed.
        """
        self._transition(WorkerState.DRAINING)
        try:
            await self._on_worker_within(self._end(), grace_s)
        except TimeoutError:
            self.stats.abandoned = True
            return False
        self._transition(WorkerState.IDLE)
        self._handler = self._on_error = None
        return True

    async def _end(self) -> None:
        assert self._stop is not None
        self._stop.set()
        for name, adapter in self.adapters.items():
            try:
                await adapter.stop()
            except Exception as exc:
                # The task may still end by itself; either way the run hears of it.
                self.stats.stop_errors += 1
                self._report(name, exc)
        tasks, self._tasks = self._tasks, []
        for name, task in tasks:
            # Each task's outcome is looked at: _guard and _poll report adapter
            # failures themselves, so anything arriving here is a fault in the runtime
            # path that must still reach the run.
            try:
                await task
            except Exception as exc:
                self._report(name, exc)

    def _report(self, name: str, exc: BaseException) -> None:
        self.stats.read_errors += 1
        if self._on_error is not None:
            self._on_error(name, exc)

    # ------------------------------------------------------------------ commands
    async def dispatch(self, device: str, command: Command, timeout_s: float) -> CommandResult:
        """Run a command on the device, bounded by ``timeout_s``.

        Once a command is on the wire it must finish (a half-sent frame leaves stale bytes
        on a shared bus), so the worker-side coroutine is shielded: cancelling or timing
        out the caller abandons the wait, never the command.
        """
        adapter = self._adapter(device)
        if self.stats.abandoned:
            return CommandResult(False, f"{device}: worker {self.resource_id} is not responding")
        self.stats.commands += 1
        started = time.monotonic()
        future = asyncio.run_coroutine_threadsafe(adapter.command(command), self._require_loop())
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), bounded_wait(timeout_s)
            )
        except TimeoutError:
            return CommandResult(
                False, f"{device}: no result within {timeout_s:g} s (command {command.name!r})"
            )
        except Exception as exc:
            # Adapters report refusals as accepted=False; an exception is a driver fault.
            elapsed = time.monotonic() - started
            return CommandResult(
                False, f"{device}: {type(exc).__name__}: {exc} after {elapsed:.3f} s"
            )

    async def snapshot(self, device: str, timeout_s: float) -> Mapping[str, Any]:
        """The adapter's status fields."""
        adapter = self._adapter(device)
        future = asyncio.run_coroutine_threadsafe(adapter.snapshot(), self._require_loop())
        return await asyncio.wait_for(
            asyncio.shield(asyncio.wrap_future(future)), bounded_wait(timeout_s)
        )

    def _adapter(self, device: str) -> Adapter:
        try:
            return self.adapters[device]
        except KeyError:
            raise UnknownDeviceError(device, self.adapters) from None

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self.state is WorkerState.CLOSED:
            raise WorkerStateError(f"worker {self.resource_id} is not open")
        return self._loop


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _log() -> Any:
    import structlog

    return structlog.get_logger("capa.worker")
