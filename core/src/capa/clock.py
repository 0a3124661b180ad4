"""The run clock: one monotonic time base per run, the join key of every row."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["RunClock"]


class RunClock:
    """Monotonic nanoseconds since the start of a run.

    Every sample, event and frame carries ``t_mono_ns`` from this clock. Wall-clock time
    is captured once, at construction, for humans (manifest, event ``t_utc``); it is never
    used to order or join rows because the host clock can step (NTP, manual changes).
    """

    __slots__ = ("_origin_ns", "started_utc")

    def __init__(self) -> None:
        self._origin_ns = time.monotonic_ns()
        self.started_utc = datetime.now(UTC)

    @property
    def origin_ns(self) -> int:
        """The raw ``time.monotonic_ns()`` reading that is ``t_mono_ns == 0``."""
        return self._origin_ns

    def now_ns(self) -> int:
        """Nanoseconds elapsed since the run started."""
        return time.monotonic_ns() - self._origin_ns

    def to_run_ns(self, monotonic_ns: int) -> int:
        """Convert a raw ``time.monotonic_ns()`` reading taken elsewhere to run time."""
        return monotonic_ns - self._origin_ns

    @staticmethod
    def utc_now_iso() -> str:
        """Current wall-clock time as ISO-8601 UTC, for human-facing fields."""
        return datetime.now(UTC).isoformat(timespec="microseconds")
