"""Simulated DAQ backend for ``device = "sim://"``.

It behaves like a hardware-clocked board seen through the driver: samples exist once the
sample clock has produced them (a block read waits until its last sample's time on the
run clock), thermocouples sit around ambient with noise, voltages follow their ``sim``
signal, and faults can be injected from the URL query: an overrun (the reader "falls
behind" and a few blocks are overwritten) or a device loss.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

from capa_nidaq.backend import DeviceLostError, OverrunError
from capa_nidaq.params import NidaqParams, SimSignal, ThermocoupleChannel

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SimBackend"]


class SimBackend:
    """A simulated DAQmx task (see the module docstring)."""

    def __init__(self, name: str, params: NidaqParams, clock_ns: Callable[[], int]) -> None:
        import numpy as np

        self.name = name
        self.params = params
        self.opts = params.sim_options
        self._now = clock_ns
        self._rng = np.random.default_rng(self.opts.seed)
        self._signals = [_signal_for(ch, self.opts.ambient) for ch in params.channels]
        self._follow_state: list[float | None] = [None] * len(params.channels)
        self._latest: Callable[[str], float | None] | None = None
        self._open = False
        self._running = False
        self._t0 = 0
        self._index = 0  # next sample index the "hardware" hands out
        self._rate = 1.0
        self._overrun_done = False
        self._wake = threading.Event()  # set by stop() to end a waiting read

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Nothing to connect to."""
        self._open = True

    def start(self, latest: Callable[[str], float | None] | None = None) -> float:
        """Start the simulated sample clock now."""
        timing = self.params.timing
        self._rate = timing.sample_rate_hz if timing else self.params.rate_hz
        self._latest = latest
        self._t0 = self._now()
        self._index = 0
        self._wake.clear()
        self._running = True
        return self._rate

    def stop(self) -> None:
        """Stop the clock; a read waiting for samples returns at once."""
        self._running = False
        self._wake.set()

    def close(self) -> None:
        """Stop and forget the task."""
        self.stop()
        self._open = False

    # ------------------------------------------------------------------ reads
    def buffer_size(self) -> int:
        """Per-channel buffer, as the real backend would size it."""
        timing = self.params.timing
        return timing.block_size * timing.buffer_blocks if timing else 1

    def available(self) -> int:
        """Samples the clock has produced that were not read yet."""
        produced = int((self._now() - self._t0) * self._rate / 1e9)
        return int(max(0, produced - self._index))

    def read_block(self, out: Any, timeout_s: float) -> int:
        """Wait for the block's last sample on the run clock, then fill ``out``."""
        import numpy as np

        n = int(out.shape[1])
        period_ns = 1e9 / self._rate
        self._check_faults()
        last_ns = self._t0 + round((self._index + n - 1) * period_ns)
        delay = (last_ns - self._now()) / 1e9
        if delay > timeout_s:
            raise TimeoutError(f"{self.name}: no samples within {timeout_s:g} s")
        if delay > 0 and self._wake.wait(delay):
            return 0  # stopped while waiting
        if not self._running:
            return 0
        t_s = (self._index + np.arange(n)) / self._rate
        self._fill(out, t_s)
        self._index += n
        return n

    def read_one(self, out: Any, timeout_s: float) -> None:
        """One on-demand sample per channel at the current time."""
        import numpy as np

        self._check_faults()
        t_s = np.array([(self._now() - self._t0) / 1e9])
        block = np.empty((len(out), 1))
        self._fill(block, t_s)
        out[:] = block[:, 0]

    # ------------------------------------------------------------------ internals
    def _elapsed_s(self) -> float:
        return (self._now() - self._t0) / 1e9

    def _check_faults(self) -> None:
        opts = self.opts
        elapsed = self._elapsed_s()
        if opts.lost_at_s is not None and elapsed >= opts.lost_at_s:
            raise DeviceLostError(f"{self.name}: simulated device loss (device not present)")
        if opts.fail_read_at_s is not None and elapsed >= opts.fail_read_at_s:
            raise RuntimeError(f"{self.name}: simulated read failure")
        if (
            opts.overrun_at_s is not None
            and not self._overrun_done
            and elapsed >= opts.overrun_at_s
            and self.params.timing is not None
        ):
            self._overrun_done = True
            # As on a board: the reader fell behind and the driver overwrote these samples.
            lost = opts.overrun_blocks * self.params.timing.block_size
            # The reader "stalls" until those samples have come and gone, so the gap in
            # the run-clock times is as long as on a board that overran.
            self._index += lost
            stalled_until = self._t0 + round(self._index * 1e9 / self._rate)
            self._wake.wait(max(0.0, (stalled_until - self._now()) / 1e9))
            raise OverrunError(
                f"{self.name}: simulated buffer overrun ({lost} samples per channel lost)",
                samples_lost=lost,
            )

    def _fill(self, out: Any, t_s: Any) -> None:
        import numpy as np

        n = len(t_s)
        span_s = n / self._rate
        for i, (ch, sig) in enumerate(zip(self.params.channels, self._signals, strict=True)):
            row = out[i]
            row[:] = sig.offset if sig.offset is not None else 0.0
            if sig.amplitude:
                row += sig.amplitude * np.sin(t_s * (2 * math.pi / sig.period_s))
            if sig.follow is not None:
                row += self._follow(i, sig, n, span_s)
            sigma = sig.noise_sigma
            if sigma is None:
                sigma = 0.05 if isinstance(ch, ThermocoupleChannel) else 0.001 * (ch.max - ch.min)
            if sigma:
                row += self._rng.normal(0.0, sigma, n)

    def _follow(self, i: int, sig: SimSignal, n: int, span_s: float) -> Any:
        import numpy as np

        assert sig.follow is not None
        source = self._latest(sig.follow) if self._latest else None
        y0 = self._follow_state[i]
        if source is None:
            y = np.full(n, y0 if y0 is not None else 0.0)
        else:
            target = sig.gain * source
            if y0 is None or sig.tau_s == 0:
                y = np.full(n, target)
            else:
                # Exact first-order response across the block, source held constant.
                steps = np.arange(1, n + 1) * (span_s / n)
                y = target + (y0 - target) * np.exp(-steps / sig.tau_s)
        self._follow_state[i] = float(y[-1])
        return y


def _signal_for(ch: Any, ambient: float) -> SimSignal:
    sig: SimSignal = ch.sim or SimSignal.model_validate({})
    if sig.offset is None:
        base = ambient if isinstance(ch, ThermocoupleChannel) else (ch.min + ch.max) / 2
        sig = sig.model_copy(update={"offset": base})
    return sig
