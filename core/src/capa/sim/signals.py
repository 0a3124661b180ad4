"""``capa.sim.signals``: a simulated device whose fields are configurable signals.

Used by tests, examples and benchmarks. It samples either *polled* (one row per
``rate_hz`` tick, like a serial instrument) or in hardware-clocked *block* mode
(``block_size`` samples at ``sample_rate_hz`` per field, times reconstructed from the
sample clock, like a DAQ board), has writable fields so setpoints can be exercised, and
can follow another field or channel with a first-order lag (a heat-flux gauge following a
heater). Faults can be injected to test the runtime: a read that hangs, or one that fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from capa.components.adapter import (
    Acquisition,
    Adapter,
    AdapterContext,
    Command,
    CommandResult,
    FieldSpec,
    HandshakeResult,
)
from capa.components.emissions import Emission, SampleBatch
from capa.components.model import MAX_DURATION_S, ConfigModel
from capa.sim.waveforms import ConstantSignal, FollowSignal, SignalSpec, evaluate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Fault", "SimSignals"]


class Fault(ConfigModel):
    """A fault to inject once ``after_s`` seconds of sampling have passed."""

    kind: Literal["hang", "error"] = Field(
        description="hang: the read blocks its worker thread; error: the read raises."
    )
    after_s: float = Field(0.0, ge=0, le=MAX_DURATION_S)
    hang_s: float = Field(
        3600.0, gt=0, le=MAX_DURATION_S, description="How long a hanging read blocks."
    )


class SimSignalsParams(ConfigModel):
    """Parameters of a ``capa.sim.signals`` device."""

    resource: str = Field(
        "sim",
        description="Resource name; devices with the same resource share one worker.",
    )
    mode: Literal["polled", "block"] = "polled"
    rate_hz: float = Field(10.0, gt=0, le=10_000, description="Polled mode: reads per second.")
    sample_rate_hz: float = Field(
        1000.0, gt=0, le=10_000_000, description="Block mode: samples per second per field."
    )
    block_size: int = Field(100, ge=1, le=1_000_000, description="Block mode: samples a block.")
    seed: int = Field(0, description="Seed of the noise generator (runs are reproducible).")
    signals: dict[str, SignalSpec] = Field(min_length=1, description="Field name -> signal.")
    writable: list[str] = Field(
        default_factory=list, description="Fields a method may write (constant signals)."
    )
    fault: Fault | None = None

    @model_validator(mode="after")
    def _writable_fields_are_constants(self) -> SimSignalsParams:
        for name in self.writable:
            spec = self.signals.get(name)
            if spec is None:
                raise ValueError(f"writable field {name!r} is not one of the signals")
            if not isinstance(spec, ConstantSignal):
                raise ValueError(f"writable field {name!r} must be a constant signal")
        return self


class SimSignals(Adapter):
    """Simulated device whose fields are configurable signals.

    Signals: constant, sine, ramp, step, noise and follow; polled or in hardware-clocked
    blocks; constant fields may be writable.
    """

    id = "capa.sim.signals"
    Params = SimSignalsParams
    capabilities = frozenset({"has_setpoint", "hardware_clocked", "simulated"})
    acquisition = Acquisition.POLLED
    family = "sim_signals"

    def __init__(self, name: str, params: ConfigModel) -> None:
        super().__init__(name, params)
        assert isinstance(params, SimSignalsParams)
        self.p = params
        self._open = False
        self._ctx: AdapterContext | None = None
        import asyncio  # here, not at import: `capa validate` never needs the event loop

        self._stopping = asyncio.Event()
        self._written: dict[str, float] = {}
        self._follow_state: dict[str, float] = {}
        self._started_ns = 0
        self._last_ns: int | None = None
        self._fault_fired = False
        import numpy as np

        # Built here (on the caller's thread) so numpy.random's import does not happen on
        # a worker thread while other devices sample; start() reseeds it.
        self._rng: Any = np.random.default_rng(self.p.seed)

    # ------------------------------------------------------------ description
    @classmethod
    def resource_id(cls, params: ConfigModel) -> str:
        """``sim:<resource>``."""
        assert isinstance(params, SimSignalsParams)
        return f"sim:{params.resource}"

    @classmethod
    def fields(cls, params: ConfigModel) -> Sequence[FieldSpec]:
        """One field per configured signal."""
        assert isinstance(params, SimSignalsParams)
        return [
            FieldSpec(
                name,
                spec.unit,
                kind="setpoint" if name in params.writable else spec.kind,
                writable=name in params.writable,
            )
            for name, spec in params.signals.items()
        ]

    def sampling(self) -> Acquisition:
        """Block mode streams; polled mode is read by the runtime."""
        return Acquisition.STREAMED if self.p.mode == "block" else Acquisition.POLLED

    def poll_interval_s(self) -> float:
        """``1 / rate_hz``."""
        return 1.0 / self.p.rate_hz

    # ------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Nothing to connect to; marks the device open."""
        self._open = True

    async def close(self) -> None:
        """Marks the device closed (idempotent)."""
        self._open = False

    async def start(self, ctx: AdapterContext) -> None:
        """Reset the signal clock and the noise generator."""
        import asyncio

        import numpy as np

        self._ctx = ctx
        self._stopping = asyncio.Event()
        self._rng = np.random.default_rng(self.p.seed)
        self._started_ns = ctx.clock.now_ns()
        self._last_ns = None
        self._fault_fired = False
        self._follow_state = {
            n: s.initial for n, s in self.p.signals.items() if isinstance(s, FollowSignal)
        }

    async def stop(self) -> None:
        """End :meth:`stream` at the next block boundary."""
        self._stopping.set()

    async def read(self) -> Sequence[Emission]:
        """One row: every field at the current run-clock time."""
        import numpy as np

        ctx = self._require_ctx()
        now = ctx.clock.now_ns()
        self._maybe_fault(now)
        t = np.array([now], dtype=np.int64)
        dt_s = 0.0 if self._last_ns is None else (now - self._last_ns) / 1e9
        self._last_ns = now
        return [SampleBatch(t_mono_ns=t, values=self._values(t, dt_s))]

    async def stream(self, ctx: AdapterContext) -> None:
        """Emit blocks paced by the sample clock until :meth:`stop`."""
        import asyncio

        import numpy as np

        period_ns = 1e9 / self.p.sample_rate_hz
        n = self.p.block_size
        index = 0  # samples emitted so far; times derive from it, never from wall time
        while not self._stopping.is_set():
            first = self._started_ns + round(index * period_ns)
            last = self._started_ns + round((index + n - 1) * period_ns)
            # Wait until the block's last sample "exists", as a DAQ buffer would fill.
            delay = (last - ctx.clock.now_ns()) / 1e9
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                    break
                except TimeoutError:
                    pass
            else:
                # Behind the sample clock (a rate the machine cannot keep up with):
                # still yield once per block, or stop() could never run on this loop
                # and the worker would be abandoned while it kept emitting.
                await asyncio.sleep(0)
                if self._stopping.is_set():
                    break
            self._maybe_fault(last)
            t = first + np.round(np.arange(n) * period_ns).astype(np.int64)
            ctx.emit(SampleBatch(t_mono_ns=t, values=self._values(t, n / self.p.sample_rate_hz)))
            index += n

    async def command(self, command: Command) -> CommandResult:
        """``write {field, value}`` sets a writable field."""
        if command.name != "write":
            return CommandResult(False, f"unknown command {command.name!r}; supported: write")
        field = command.args.get("field")
        value = command.args.get("value")
        if field not in self.p.writable:
            return CommandResult(False, f"field {field!r} is not writable ({self.p.writable})")
        if not isinstance(value, int | float) or not math.isfinite(value):
            return CommandResult(False, f"value must be a finite number, got {value!r}")
        self._written[str(field)] = float(value)
        now = self._ctx.clock.now_ns() if self._ctx else 0
        return CommandResult(True, f"{field} = {value}", t_mono_ns=now, value=float(value))

    async def snapshot(self) -> Mapping[str, Any]:
        """Written values and follow states."""
        return {"written": dict(self._written), "follow": dict(self._follow_state)}

    @classmethod
    async def handshake(cls, params: ConfigModel) -> HandshakeResult:
        """Always answers: it is a simulator."""
        return HandshakeResult(True, "simulated device", {"model": "capa.sim.signals"})

    # ------------------------------------------------------------ internals
    def _require_ctx(self) -> AdapterContext:
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: read before start")
        return self._ctx

    def _maybe_fault(self, now_ns: int) -> None:
        fault = self.p.fault
        if fault is None or self._fault_fired:
            return
        if (now_ns - self._started_ns) / 1e9 < fault.after_s:
            return
        self._fault_fired = True
        if fault.kind == "error":
            raise RuntimeError(f"{self.name}: injected read error")
        # A hang blocks the worker's thread outright, as a wedged driver call would.
        time.sleep(fault.hang_s)

    def _values(
        self, t_ns: npt.NDArray[np.int64], dt_s: float
    ) -> dict[str, npt.NDArray[np.float64]]:
        import numpy as np

        t_s = (t_ns - self._started_ns) / 1e9
        out: dict[str, npt.NDArray[np.float64]] = {}
        follows: list[tuple[str, FollowSignal]] = []
        for name, spec in self.p.signals.items():
            if isinstance(spec, FollowSignal):
                follows.append((name, spec))
            elif name in self._written:
                out[name] = np.full(t_s.shape, self._written[name], dtype=np.float64)
            else:
                out[name] = evaluate(spec, t_s, self._rng)
        for name, spec in follows:
            out[name] = self._follow(name, spec, out, len(t_s), dt_s)
        return out

    def _follow(
        self,
        name: str,
        spec: FollowSignal,
        own: Mapping[str, npt.NDArray[np.float64]],
        n: int,
        span_s: float,
    ) -> npt.NDArray[np.float64]:
        import numpy as np

        if spec.source in own:
            source: float | None = float(own[spec.source][0])
        else:
            ctx = self._require_ctx()
            latest = getattr(ctx, "latest", None)
            source = latest(spec.source) if callable(latest) else None
        y0 = self._follow_state[name]
        if source is None:
            y = np.full(n, y0, dtype=np.float64)
        else:
            target = spec.gain * source + spec.offset
            if spec.tau_s == 0:
                y = np.full(n, target, dtype=np.float64)
            else:
                # Exact first-order step response across the block (source held constant).
                steps = np.arange(1, n + 1) * (span_s / n)
                y = target + (y0 - target) * np.exp(-steps / spec.tau_s)
        self._follow_state[name] = float(y[-1])
        if spec.noise_sigma:
            y = y + self._rng.normal(0.0, spec.noise_sigma, n)
        return y
