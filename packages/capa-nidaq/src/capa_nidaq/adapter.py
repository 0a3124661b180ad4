"""``nidaq.task``: one NI-DAQmx analog-input task, polled on demand or hardware-clocked.

Hardware-clocked mode reads whole blocks into numpy arrays on a reader thread and emits
them as columnar :class:`~capa.SampleBatch` es whose per-sample times are reconstructed
from the sample clock: ``t0 + k / rate``, with ``t0`` the task start on the run clock.
Nothing is dropped silently: a buffer overrun becomes a ``nidaq.overrun`` event (the task
restarts and the time base is re-anchored), a growing backlog a ``nidaq.backlog`` event,
and the counts end up in a ``nidaq.summary`` event when sampling stops.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from capa import (
    Acquisition,
    Adapter,
    AdapterContext,
    Command,
    CommandResult,
    ConfigModel,
    DeviceEvent,
    DiscoveredDevice,
    Emission,
    EventSeverity,
    FieldSpec,
    HandshakeResult,
    SampleBatch,
)
from capa_nidaq.backend import DaqBackend, DeviceLostError, OverrunError, make_backend
from capa_nidaq.params import NidaqParams, ThermocoupleChannel

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from capa_nidaq.counters import Counters

__all__ = ["NidaqTask"]


class NidaqTask(Adapter):
    """NI-DAQmx analog input task: thermocouple and voltage channels.

    Polled (``timing`` omitted: one on-demand sample per channel every ``1/rate_hz``) or
    hardware-clocked continuous (``timing.sample_rate_hz``, read in ``block_size`` blocks).
    ``device = "sim://"`` runs the simulated backend.
    """

    id = "nidaq.task"
    Params = NidaqParams
    capabilities = frozenset({"hardware_clocked"})
    acquisition = Acquisition.POLLED
    family = "nidaq"

    def __init__(self, name: str, params: ConfigModel) -> None:
        super().__init__(name, params)
        assert isinstance(params, NidaqParams)
        self.p = params
        self._backend: DaqBackend | None = None
        self._ctx: AdapterContext | None = None
        # asyncio and the executor are imported where used: `capa validate` and `capa
        # plugins list` load this plugin and never sample.
        import asyncio

        self._stopping = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._counters: Counters | None = None
        self._latest: dict[str, float] = {}
        self._lost = False

    # ------------------------------------------------------------ description
    @classmethod
    def resource_id(cls, params: ConfigModel) -> str:
        """``daqmx:<chassis>`` (``daqmx-sim:<chassis>`` for the simulator)."""
        assert isinstance(params, NidaqParams)
        prefix = "daqmx-sim" if params.simulated else "daqmx"
        return f"{prefix}:{params.chassis_name}"

    @classmethod
    def claims(cls, params: ConfigModel) -> list[str]:
        """Physical channels this task occupies; two devices may not claim the same one."""
        assert isinstance(params, NidaqParams)
        prefix = "daqmx-sim" if params.simulated else "daqmx"
        return [f"{prefix}:{ch.physical_channel.lower()}" for ch in params.channels]

    @classmethod
    def resource_settings(cls, params: ConfigModel) -> Mapping[str, Any]:
        """Nothing must agree between tasks on one chassis (each has its own channels)."""
        return {}

    @classmethod
    def fields(cls, params: ConfigModel) -> Sequence[FieldSpec]:
        """One field per channel, named like the channel."""
        assert isinstance(params, NidaqParams)
        return [
            FieldSpec(
                ch.name,
                ch.unit,
                kind="temperature" if isinstance(ch, ThermocoupleChannel) else "voltage",
                description=f"{ch.physical_channel} ({ch.kind})",
            )
            for ch in params.channels
        ]

    def sampling(self) -> Acquisition:
        """Streamed when hardware-clocked, polled otherwise."""
        return Acquisition.STREAMED if self.p.timing is not None else Acquisition.POLLED

    def poll_interval_s(self) -> float:
        """``1 / rate_hz`` (polled mode)."""
        return 1.0 / self.p.rate_hz

    # ------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Create the task and its channels (blocking; runs on the worker thread)."""
        if self._backend is not None:
            return
        backend = make_backend(self.name, self.p, self._now_ns)
        backend.open()
        self._backend = backend

    async def close(self) -> None:
        """Stop and clear the task (idempotent)."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        self._shutdown_executor()

    async def start(self, ctx: AdapterContext) -> None:
        """Start the task; ``t0`` (the first sample's run-clock time) is taken here."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from capa_nidaq.counters import Counters

        self._ctx = ctx
        self._stopping = asyncio.Event()
        self._counters = Counters()
        self._start_task()
        if self.p.timing is not None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"nidaq {self.name}")

    async def stop(self) -> None:
        """End sampling: the stream returns after the block in progress."""
        self._stopping.set()
        if self._backend is not None:
            self._backend.stop()

    async def read(self) -> Sequence[Emission]:
        """Polled mode: one on-demand sample per channel."""
        import numpy as np

        backend = self._require_backend()
        ctx = self._require_ctx()
        out = np.empty(len(self.p.channels))
        before = ctx.clock.now_ns()
        try:
            backend.read_one(out, 10.0)
        except DeviceLostError as exc:
            if self._lost:
                raise  # already reported: the worker counts every further failure
            self._lost = True
            return [self._lost_event(exc)]
        self._lost = False
        t = (before + ctx.clock.now_ns()) // 2
        self._remember(out)
        # One row: every column is a 1-D array of length 1 (channels x 1 samples), the
        # same shape a hardware-clocked block has — never a 0-d scalar per channel.
        return [SampleBatch(np.array([t], dtype=np.int64), self._columns(out.reshape(-1, 1)))]

    async def stream(self, ctx: AdapterContext) -> None:
        """Hardware-clocked mode: read blocks and emit them until :meth:`stop`."""
        assert self.p.timing is not None
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                try:
                    emissions = await loop.run_in_executor(self._executor, self._next_block)
                except DeviceLostError as exc:
                    if self._stopping.is_set():
                        break
                    ctx.emit(self._lost_event(exc))
                    raise
                except Exception:
                    if self._stopping.is_set():
                        break  # a read aborted by stop() is not a fault
                    raise
                for emission in emissions:
                    ctx.emit(emission)
        finally:
            ctx.emit(self._summary_event())
            self._shutdown_executor()

    async def command(self, command: Command) -> CommandResult:
        """An input task takes no commands; every command is refused."""
        return CommandResult(False, f"{self.name}: nidaq.task has no writable fields or verbs")

    async def snapshot(self) -> Mapping[str, Any]:
        """Latest values and the acquisition counters."""
        counters = self._counters.as_dict() if self._counters else {}
        return {"latest": dict(self._latest), **counters, "simulated": self.p.simulated}

    def run_summary(self) -> Mapping[str, Any]:
        """Counters of the last sampling period, for ``manifest.counts.devices.<name>``.

        The same counters as the ``nidaq.summary`` event (overruns, samples lost).
        """
        return self._counters.as_dict() if self._counters else {}

    # ------------------------------------------------------------ optional, read-only
    @classmethod
    async def discover(cls) -> Sequence[DiscoveredDevice]:
        """Devices the local NI-DAQmx driver knows (``nidaqmx.system``)."""
        from capa_nidaq.discovery import discover_devices

        return discover_devices(cls.id, None)

    @classmethod
    async def handshake(cls, params: ConfigModel) -> HandshakeResult:
        """Product type and serial number of the device (``nidaqmx.system.Device``)."""
        from capa_nidaq.discovery import handshake

        assert isinstance(params, NidaqParams)
        return handshake(params)

    # ------------------------------------------------------------ internals
    def _now_ns(self) -> int:
        return self._ctx.clock.now_ns() if self._ctx is not None else time.monotonic_ns()

    def _start_task(self) -> None:
        backend = self._require_backend()
        ctx = self._require_ctx()
        counters = self._require_counters()
        before = ctx.clock.now_ns()
        rate = backend.start(ctx.latest)
        # Samples start on the first clock edge after the start call; the midpoint of
        # the call bounds the error of t0 by half the call's duration.
        counters.anchor((before + ctx.clock.now_ns()) // 2, rate)

    def _next_block(self) -> list[Emission]:
        """One block (reader thread): read, time-stamp, and check for a backlog."""
        import numpy as np

        timing = self.p.timing
        assert timing is not None
        backend = self._require_backend()
        counters = self._require_counters()
        out = np.empty((len(self.p.channels), timing.block_size))
        emitted: list[Emission] = []
        try:
            n = backend.read_block(out, timing.read_timeout_s)
        except OverrunError as exc:
            return [self._recover_overrun(exc)]
        if n == 0:
            return []
        t = counters.times(n)
        self._remember(out[:, n - 1])
        emitted.append(SampleBatch(t, self._columns(out[:, :n])))
        backlog = backend.available()
        if counters.backlog_rising(backlog, backend.buffer_size()):
            emitted.append(
                DeviceEvent(
                    "nidaq.backlog",
                    f"{self.name}: {backlog} samples per channel waiting in a buffer of "
                    f"{backend.buffer_size()}; the reader is falling behind",
                    EventSeverity.WARNING,
                    {"available": backlog, "buffer_size": backend.buffer_size()},
                    int(t[-1]),
                )
            )
        return emitted

    def _recover_overrun(self, exc: OverrunError) -> DeviceEvent:
        """Restart the task after an overrun and re-anchor the time base."""
        backend = self._require_backend()
        counters = self._require_counters()
        expected_next = counters.next_time()
        backend.stop()
        self._start_task()
        lost = counters.record_overrun(expected_next)
        return DeviceEvent(
            "nidaq.overrun",
            f"{exc}; task restarted, about {lost} samples per channel lost",
            EventSeverity.WARNING,
            {
                "samples_lost_per_channel": lost,
                "driver_samples_lost": exc.samples_lost,
                "overruns": counters.overruns,
                "gap_start_ns": expected_next,
                "resumed_ns": counters.t0_ns,
            },
            counters.t0_ns,
        )

    def _lost_event(self, exc: DeviceLostError) -> DeviceEvent:
        return DeviceEvent(
            "nidaq.device_lost",
            str(exc),
            EventSeverity.ERROR,
            {"device": self.p.device},
            self._now_ns(),
        )

    def _summary_event(self) -> DeviceEvent:
        counters = self._require_counters()
        severity = EventSeverity.WARNING if counters.overruns else EventSeverity.INFO
        return DeviceEvent(
            "nidaq.summary",
            f"{self.name}: {counters.samples} samples per channel in {counters.blocks} blocks, "
            f"{counters.overruns} overruns, {counters.samples_lost} samples per channel lost",
            severity,
            counters.as_dict(),
            self._now_ns(),
        )

    def _columns(self, block: Any) -> dict[str, Any]:
        return {ch.name: block[i] for i, ch in enumerate(self.p.channels)}

    def _remember(self, values: Any) -> None:
        self._latest = {ch.name: float(values[i]) for i, ch in enumerate(self.p.channels)}

    def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True)

    def _require_backend(self) -> DaqBackend:
        if self._backend is None:
            raise DeviceLostError(f"{self.name}: task is not open")
        return self._backend

    def _require_ctx(self) -> AdapterContext:
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: read before start")
        return self._ctx

    def _require_counters(self) -> Counters:
        if self._counters is None:
            raise RuntimeError(f"{self.name}: not started")
        return self._counters
