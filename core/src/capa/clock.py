"""The run clock: one monotonic time base per run, the join key of every row."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["RunClock"]

_ANCHOR_TRIES: Final = 5
"""Bracketed readings taken at construction; the tightest bracket is kept."""


class RunClock:
    """Monotonic nanoseconds since the start of a run.

    Every sample, event and frame carries ``t_mono_ns`` from this clock. Wall-clock time
    is captured once, at construction, for humans (manifest, event ``t_utc``) and as the
    bundle's clock anchor (:meth:`anchor`): the absolute time of ``t_mono_ns == 0``. It is
    never used to order or join rows because the host clock can step (NTP, manual changes).

    The anchor is taken by reading the wall clock between two monotonic readings (a
    bracket), a few times over, and keeping the narrowest bracket: the run's zero is the
    bracket's midpoint, so the wall-clock reading is off from it by at most half the
    bracket width (recorded in :attr:`anchor_uncertainty_ns`).
    """

    __slots__ = ("_origin_ns", "anchor_uncertainty_ns", "started_utc")

    def __init__(self) -> None:
        best: tuple[int, int, int] | None = None  # (width, midpoint, wall ns)
        for _ in range(_ANCHOR_TRIES):
            before = time.monotonic_ns()
            wall = time.time_ns()
            after = time.monotonic_ns()
            width = after - before
            if best is None or width < best[0]:
                best = (width, before + width // 2, wall)
        assert best is not None
        width, midpoint, wall = best
        self._origin_ns = midpoint
        self.anchor_uncertainty_ns = (width + 1) // 2
        """Half the bracket: how far the wall-clock reading may be from ``t_mono_ns == 0``."""
        self.started_utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=wall // 1000)

    @property
    def origin_ns(self) -> int:
        """The raw ``time.monotonic_ns()`` reading that is ``t_mono_ns == 0``."""
        return self._origin_ns

    def anchor(self) -> dict[str, Any]:
        """The manifest's ``clock`` block: UTC at ``t_mono_ns == 0`` and how it was taken."""
        return {
            "utc_at_zero": self.started_utc.isoformat(timespec="microseconds"),
            "monotonic_origin_ns": self._origin_ns,
            "method": (
                f"time.time_ns() read between two time.monotonic_ns() readings, narrowest "
                f"of {_ANCHOR_TRIES} brackets; t_mono_ns == 0 is the bracket midpoint, "
                f"within {self.anchor_uncertainty_ns} ns of the wall-clock reading "
                "(truncated to microseconds); host clock as synchronised at run start"
            ),
        }

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
