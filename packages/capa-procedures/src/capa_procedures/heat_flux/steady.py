"""The steady-state predicate of a heat-flux tune, over a sliding window of samples."""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["Measurement", "SteadyWindow", "robust_spread", "slope"]

_MAD_TO_SIGMA = 1.4826  # scales the median absolute deviation to σ for normal noise
_COVERAGE = 0.9  # a window counts once its samples span this share of window_s


def robust_spread(values: list[float]) -> float:
    """1.4826 × median absolute deviation: a σ estimate a few spikes do not inflate."""
    med = statistics.median(values)
    return _MAD_TO_SIGMA * statistics.median(abs(v - med) for v in values)


def slope(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (0 for fewer than two samples)."""
    n = len(times)
    if n < 2:
        return 0.0
    mt, mv = sum(times) / n, sum(values) / n
    den = sum((t - mt) ** 2 for t in times)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True)) / den


@dataclass(frozen=True, slots=True)
class Measurement:
    """Flux statistics of a window judged steady."""

    flux_mean: float
    flux_std: float
    flux_spread: float
    flux_slope: float
    samples: int


class SteadyWindow:
    """Samples of the last ``window_s`` seconds and the dwell bookkeeping.

    Steady means, over a full window: every heater PV within ``pv_band`` of the window's
    PV mean (when a PV channel is given), robust flux spread below ``spread_cap`` and the
    absolute flux slope below ``slope_cap``. A measurement is accepted once the window has
    been steady continuously for ``dwell_s``.
    """

    def __init__(
        self,
        *,
        window_s: float,
        dwell_s: float,
        pv_band: float,
        spread_cap: float,
        slope_cap: float,
    ) -> None:
        self.window_s = window_s
        self.dwell_s = dwell_s
        self.pv_band = pv_band
        self.spread_cap = spread_cap
        self.slope_cap = slope_cap
        self.flux: deque[tuple[float, float]] = deque()
        self.pv: deque[tuple[float, float]] = deque()
        self._since: float | None = None
        self._start: float | None = None

    def reset(self, now_s: float) -> None:
        """Forget everything (the setpoint just changed at ``now_s``)."""
        self.flux.clear()
        self.pv.clear()
        self._since = None
        self._start = now_s

    def add_flux(self, t_s: float, value: float) -> None:
        """Add a flux sample (ignored before the last reset)."""
        if self._start is None or t_s >= self._start:
            self.flux.append((t_s, value))

    def add_pv(self, t_s: float, value: float) -> None:
        """Add a heater PV sample (ignored before the last reset)."""
        if self._start is None or t_s >= self._start:
            self.pv.append((t_s, value))

    def _trim(self, now_s: float) -> None:
        for buf in (self.flux, self.pv):
            while buf and buf[0][0] < now_s - self.window_s:
                buf.popleft()

    def steady_now(self, now_s: float) -> bool:
        """Whether the current window satisfies the predicate."""
        self._trim(now_s)
        if self._start is None or now_s - self._start < self.window_s * _COVERAGE:
            return False
        if len(self.flux) < 3:
            return False
        if self.pv:
            values = [v for _, v in self.pv]
            mean = sum(values) / len(values)
            if any(abs(v - mean) > self.pv_band for v in values):
                return False
        times = [t for t, _ in self.flux]
        values = [v for _, v in self.flux]
        if robust_spread(values) > self.spread_cap:
            return False
        return abs(slope(times, values)) <= self.slope_cap

    def accepted(self, now_s: float) -> Measurement | None:
        """The measurement once steady for ``dwell_s``; ``None`` until then."""
        if not self.steady_now(now_s):
            self._since = None
            return None
        if self._since is None:
            self._since = now_s
        if now_s - self._since < self.dwell_s:
            return None
        times = [t for t, _ in self.flux]
        values = [v for _, v in self.flux]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
        return Measurement(mean, std, robust_spread(values), slope(times, values), len(values))
