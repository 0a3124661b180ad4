"""The damped secant update of a heat-flux tune."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Point", "next_setpoint"]


@dataclass(frozen=True, slots=True)
class Point:
    """A measured steady state: setpoint and the mean flux it gave."""

    setpoint: float
    flux: float


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def next_setpoint(
    points: list[Point],
    target: float,
    *,
    damping: float,
    max_step: float,
    floor: float,
    ceiling: float,
    initial_gain: float | None = None,
    previous_gain: float | None = None,
) -> tuple[float, float | None]:
    """The next setpoint to try, and the gain (flux per setpoint unit) it assumed.

    The gain is the secant through the last two points with different setpoints; while
    there is none (or it is not positive, as noise can make it near convergence) the
    previous gain, ``initial_gain`` or the last point's flux / setpoint is used. The step is
    ``damping × (target − flux) / gain``, clamped to ``± max_step`` and the result to
    ``[floor, ceiling]``. Without any usable gain the search steps by ``max_step`` toward the
    target.
    """
    last = points[-1]
    gain: float | None = None
    for earlier in reversed(points[:-1]):
        if earlier.setpoint != last.setpoint:
            secant = (last.flux - earlier.flux) / (last.setpoint - earlier.setpoint)
            gain = secant if secant > 0 else None
            break
    if gain is None:
        gain = previous_gain or initial_gain
    if gain is None and last.setpoint > 0 and last.flux > 0:
        gain = last.flux / last.setpoint
    error = target - last.flux
    if gain is None or gain <= 0:
        step = max_step if error > 0 else -max_step
    else:
        step = damping * error / gain
    step = _clamp(step, -max_step, max_step)
    return _clamp(last.setpoint + step, floor, ceiling), gain
