"""Time base and acquisition counters of one hardware-clocked task.

Sample ``k`` after a (re)start at run-clock time ``t0`` is stamped ``t0 + round(k * 1e9 /
rate)``: times come from the sample clock, never from when Python got the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Counters"]


@dataclass
class Counters:
    """Sample clock anchor plus what was read, lost and warned about."""

    t0_ns: int = 0
    rate_hz: float = 1.0
    index: int = 0  # samples per channel read since the last (re)start
    samples: int = 0
    blocks: int = 0
    overruns: int = 0
    samples_lost: int = 0
    backlog_warnings: int = 0
    restarts: int = 0
    _backlog_high: bool = False

    def anchor(self, t0_ns: int, rate_hz: float) -> None:
        """(Re)start the time base: the next sample is taken at ``t0_ns``."""
        self.t0_ns, self.rate_hz, self.index = t0_ns, rate_hz, 0

    def times(self, n: int) -> Any:
        """Run-clock times of the next ``n`` samples (int64), advancing the index."""
        import numpy as np

        k = np.arange(self.index, self.index + n, dtype=np.float64)
        t = self.t0_ns + np.round(k * (1e9 / self.rate_hz)).astype(np.int64)
        self.index += n
        self.samples += n
        self.blocks += 1
        return t

    def next_time(self) -> int:
        """When the next sample would have been taken had nothing been lost."""
        return self.t0_ns + round(self.index * 1e9 / self.rate_hz)

    def record_overrun(self, expected_next_ns: int) -> int:
        """Count an overrun after the restart; returns samples per channel lost (estimate)."""
        lost = max(0, round((self.t0_ns - expected_next_ns) * self.rate_hz / 1e9))
        self.overruns += 1
        self.restarts += 1
        self.samples_lost += lost
        return lost

    def backlog_rising(self, available: int, buffer_size: int) -> bool:
        """True once each time the backlog passes half the buffer (hysteresis at a quarter)."""
        if not self._backlog_high and available > buffer_size // 2:
            self._backlog_high = True
            self.backlog_warnings += 1
            return True
        if self._backlog_high and available < buffer_size // 4:
            self._backlog_high = False
        return False

    def as_dict(self) -> dict[str, Any]:
        """Plain counters for events and snapshots."""
        return {
            "samples_per_channel": self.samples,
            "blocks": self.blocks,
            "overruns": self.overruns,
            "samples_lost_per_channel": self.samples_lost,
            "backlog_warnings": self.backlog_warnings,
            "restarts": self.restarts,
            "sample_rate_hz": self.rate_hz,
        }
