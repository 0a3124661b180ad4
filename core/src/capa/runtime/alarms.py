"""Alarm and interlock logic: pure state machines, no I/O, no event loop.

:class:`AlarmState` turns batches of one channel's samples into raise/clear transitions;
:class:`InterlockState` decides whether a write to a channel is allowed. The safety
monitor (:mod:`capa.runtime.safety`) owns one of each per configured alarm / interlock and
acts on what they return. Kept free of the runtime so the semantics (hysteresis, minimum
duration, rate, staleness) are tested on their own, sample by sample.

Batches are checked vectorised: a batch of a high-rate channel that is far from every
limit costs a few numpy reductions, and only samples near a transition are looked at one
by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from capa.config.safety import AlarmConfig, InterlockConfig

__all__ = ["AlarmState", "AlarmTransition", "InterlockState"]

Reason = Literal["high", "low", "rate", "stale"]


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """An alarm raised or cleared.

    Attributes:
        alarm: the alarm's name.
        channel: the channel it watches.
        raised: ``True`` when raised, ``False`` when cleared.
        reason: ``high``, ``low``, ``rate`` or ``stale``.
        value: the value (or rate, per second; or seconds without a sample) that decided.
        limit: the limit it was compared with.
        t_mono_ns: run time of the deciding sample (or check).
    """

    alarm: str
    channel: str
    raised: bool
    reason: Reason
    value: float
    limit: float
    t_mono_ns: int

    def metadata(self) -> dict[str, Any]:
        """Event metadata (seed 003 style: flat, JSON-able)."""
        return {
            "alarm": self.alarm,
            "channel": self.channel,
            "reason": self.reason,
            "value": self.value,
            "limit": self.limit,
            "t_mono_ns": self.t_mono_ns,
        }


class AlarmState:
    """One alarm's state machine over its channel's samples."""

    def __init__(self, config: AlarmConfig) -> None:
        self.config = config
        self.raised: Reason | None = None
        self._pending_since: int | None = None  # limit passed, min duration not yet over
        self._last_t: int | None = None
        self._last_v: float | None = None
        self._stale_raised = False

    # ------------------------------------------------------------------ samples
    def update(self, t_ns: Any, values: Any) -> list[AlarmTransition]:
        """Feed one batch (run times in ns, values); return the transitions it caused."""
        import numpy as np

        t = np.atleast_1d(np.asarray(t_ns, dtype=np.int64))
        v = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if len(v) == 0:
            return []
        out: list[AlarmTransition] = []
        if self._stale_raised:
            self._stale_raised = False
            out.append(self._transition(False, "stale", 0.0, self._stale_limit, int(t[0])))
        rate = self._rates(t, v)
        outside = self._outside(v, rate)
        if self.raised is None and self._pending_since is None and not outside.any():
            self._remember(t, v)  # the common case: nowhere near a limit
            return out
        for i in range(len(v)):
            out.extend(self._step(int(t[i]), float(v[i]), float(rate[i]), bool(outside[i])))
        self._remember(t, v)
        return out

    def check_stale(self, now_ns: int) -> list[AlarmTransition]:
        """Raise the staleness alarm if the channel has been silent for ``stale_s``."""
        limit = self.config.stale_s
        if limit is None or self._stale_raised or self._last_t is None:
            return []
        silent_s = (now_ns - self._last_t) / 1e9
        if silent_s <= limit:
            return []
        self._stale_raised = True
        return [self._transition(True, "stale", silent_s, limit, now_ns)]

    def arm(self, now_ns: int) -> None:
        """Start the staleness clock (a channel that never reports is stale too)."""
        if self._last_t is None:
            self._last_t = now_ns

    # ------------------------------------------------------------------ internals
    @property
    def _stale_limit(self) -> float:
        return self.config.stale_s or 0.0

    def _rates(self, t: Any, v: Any) -> Any:
        import numpy as np

        if self.config.rate_max_per_s is None:
            return np.zeros(len(v))
        prev_t = t[0] if self._last_t is None else self._last_t
        prev_v = v[0] if self._last_v is None else self._last_v
        dt = np.diff(t, prepend=prev_t) / 1e9
        dv = np.diff(v, prepend=prev_v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dt > 0, np.abs(dv) / np.where(dt > 0, dt, 1.0), 0.0)

    def _outside(self, v: Any, rate: Any) -> Any:
        c = self.config
        out = rate > (c.rate_max_per_s or math.inf)
        if c.high is not None:
            out |= v > c.high
        if c.low is not None:
            out |= v < c.low
        return out

    def _step(self, t: int, v: float, rate: float, outside: bool) -> list[AlarmTransition]:
        c = self.config
        if self.raised is not None:
            if self._still_raised(v, rate):
                return []
            reason, self.raised = self.raised, None
            self._pending_since = None
            limit = self._limit(reason)
            shown = rate if reason == "rate" else v
            return [self._transition(False, reason, shown, limit, t)]
        if not outside:
            self._pending_since = None
            return []
        if self._pending_since is None:
            self._pending_since = t
        if (t - self._pending_since) / 1e9 < c.min_duration_s:
            return []
        reason = self._why(v, rate)
        self.raised = reason
        shown = rate if reason == "rate" else v
        return [self._transition(True, reason, shown, self._limit(reason), t)]

    def _still_raised(self, v: float, rate: float) -> bool:
        c = self.config
        if c.rate_max_per_s is not None and rate > c.rate_max_per_s:
            return True
        if c.high is not None and v > c.high - c.hysteresis:
            return self.raised == "high" or v > c.high
        if c.low is not None and v < c.low + c.hysteresis:
            return self.raised == "low" or v < c.low
        return False

    def _why(self, v: float, rate: float) -> Reason:
        c = self.config
        if c.high is not None and v > c.high:
            return "high"
        if c.low is not None and v < c.low:
            return "low"
        return "rate"

    def _limit(self, reason: Reason) -> float:
        c = self.config
        value = {"high": c.high, "low": c.low, "rate": c.rate_max_per_s, "stale": c.stale_s}
        return float(value[reason] or 0.0)

    def _remember(self, t: Any, v: Any) -> None:
        self._last_t = int(t[-1])
        self._last_v = float(v[-1])

    def _transition(
        self, raised: bool, reason: Reason, value: float, limit: float, t: int
    ) -> AlarmTransition:
        c = self.config
        return AlarmTransition(c.name, c.channel, raised, reason, value, limit, t)


class InterlockState:
    """One interlock: may this value be written to its channel now?"""

    def __init__(self, config: InterlockConfig) -> None:
        self.config = config
        self._last: tuple[float, int] | None = None  # last accepted (value, t_ns)

    def check(self, value: float, t_ns: int, current: float | None = None) -> str | None:
        """``None`` if ``value`` may be written at ``t_ns``, else the reason it may not.

        ``current`` is the channel's latest reading, the reference for the rate limit
        before the first write of a run.
        """
        c = self.config
        if not math.isfinite(value):
            return f"{c.channel}: {value} is not a finite number"
        if c.max is not None and value > c.max:
            return f"{c.channel}: {value:g} exceeds the interlock maximum {c.max:g}"
        if c.min is not None and value < c.min:
            return f"{c.channel}: {value:g} is below the interlock minimum {c.min:g}"
        if c.max_rate_per_min is not None:
            ref = self._last or ((current, t_ns) if current is not None else None)
            if ref is not None and value != ref[0]:
                minutes = max(t_ns - ref[1], 0) / 60e9
                # A small tolerance so a ramp issuing set points exactly at the limit passes.
                allowed = c.max_rate_per_min * minutes * (1 + 1e-6) + 1e-9
                if abs(value - ref[0]) > allowed:
                    return (
                        f"{c.channel}: changing {ref[0]:g} -> {value:g} in {minutes * 60:.3g} s "
                        f"exceeds the interlock rate {c.max_rate_per_min:g} per minute"
                    )
        return None

    def accepted(self, value: float, t_ns: int) -> None:
        """Record a write that went through (the reference for the next rate check)."""
        self._last = (value, t_ns)
