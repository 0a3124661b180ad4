"""A balance's physics and state, without any protocol: what the display would show."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BalanceConfig", "BalanceModel", "BalanceState"]


@dataclass(frozen=True, slots=True)
class BalanceConfig:
    """Simulated balance settings (also the keys a ``sim://?...`` port URL accepts).

    Attributes:
        seed: seed of the reading noise.
        mass_g: mass of the specimen on the pan at start.
        loss_g_per_s: how fast the specimen loses mass (drying, burning), clipped at 0 g.
        capacity_g: maximum load; above it the balance reports overload.
        decimals: readability (4 = 0.1 mg).
        settle_s: time after a load change or adjustment during which readings are unstable.
        tare_settle_s: time after a tare or zero during which readings are unstable (a
            real balance re-settles after taring: about a second on an analytical one).
        zero_busy_s: after a zero, the cell sends no value for this long (xBPI off-scale
            marker; captured on a Cubis for about 2 s). 0 = no busy period.
        noise_g: standard deviation of the reading noise.
        adjust_s: duration of an internal adjustment.
        unit: the unit the balance displays (grams; the value is converted).
        model, serial, software: identity the balance reports.
    """

    seed: int = 0
    mass_g: float = 50.0
    loss_g_per_s: float = 0.0
    capacity_g: float = 220.0
    decimals: int = 4
    settle_s: float = 0.3
    tare_settle_s: float = 1.0
    zero_busy_s: float = 0.0
    noise_g: float = 0.0
    adjust_s: float = 0.2
    unit: str = "g"
    model: str = "SIM220-1S"
    serial: str = "0037454321"
    software: str = "00-37-09"

    @property
    def zero_range_g(self) -> float:
        """Largest gross load ``zero`` accepts (2 % of capacity, as on real balances)."""
        return 0.02 * self.capacity_g


@dataclass(frozen=True, slots=True)
class BalanceState:
    """What the balance shows at one instant."""

    net_g: float
    stable: bool
    overload: bool
    underload: bool
    adjusting: bool
    gross_g: float = 0.0
    tare_g: float = 0.0
    busy: bool = False


class BalanceModel:
    """Thread-safe balance: a specimen that may lose mass, tare, zero, settling, overload.

    Every method takes the time from ``clock`` (``time.monotonic`` by default) so tests can
    drive it with a fake clock.
    """

    def __init__(
        self, config: BalanceConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BalanceConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        now = clock()
        self._mass0 = self.config.mass_g
        self._t_load = now
        self._zero_offset = 0.0
        self._tare = 0.0
        self._t_change = -math.inf  # the initial load has settled
        self._settle_for = self.config.settle_s
        self._busy_until = -math.inf
        self._shown_at_change = 0.0
        self._adjust_until = -math.inf
        self._pan_off = False

    # ------------------------------------------------------------------ physics
    def _load(self, now: float) -> float:
        if self._pan_off:
            # No pan (and nothing on it): the weighing cell sits well below its zero point.
            return -4 * self.config.zero_range_g
        return max(0.0, self._mass0 - self.config.loss_g_per_s * (now - self._t_load))

    def _gross(self, now: float) -> float:
        return self._load(now) - self._zero_offset

    def _settling(self, now: float) -> bool:
        return now < self._t_change + self._settle_for or now < self._adjust_until

    def _state(self, now: float) -> BalanceState:
        gross = self._gross(now)
        net = gross - self._tare
        settling = self._settling(now)
        if settling and self._settle_for > 0:
            # The reading swings towards the new load with a decaying oscillation.
            tau = self._settle_for / 4
            age = max(0.0, now - self._t_change)
            swing = (self._shown_at_change - net) * math.exp(-age / tau)
            net += swing * math.cos(2 * math.pi * age / self._settle_for)
        if self.config.noise_g > 0:
            net += self._rng.gauss(0.0, self.config.noise_g)
        return BalanceState(
            net_g=net,
            stable=not settling,
            overload=gross > self.config.capacity_g,
            underload=gross < -self.config.zero_range_g,
            adjusting=now < self._adjust_until,
            gross_g=net + self._tare,
            tare_g=self._tare,
            busy=now < self._busy_until,
        )

    def _changed(self, now: float, settle_s: float | None = None) -> None:
        self._shown_at_change = self._state(now).net_g
        self._t_change = now
        self._settle_for = self.config.settle_s if settle_s is None else settle_s

    def _resettle(self, now: float) -> None:
        # After a tare or zero the display jumps to about 0 and wobbles a few digits until
        # the balance declares it stable again -- not a swing from the old value.
        self._t_change = now
        self._settle_for = self.config.tare_settle_s
        self._shown_at_change = self._gross(now) - self._tare + 5 * 10.0**-self.config.decimals

    # ------------------------------------------------------------------ public API
    def state(self) -> BalanceState:
        """What the display shows now."""
        with self._lock:
            return self._state(self._clock())

    def place(self, mass_g: float) -> None:
        """Put a new load on the pan (replacing the current one); the reading settles."""
        with self._lock:
            now = self._clock()
            self._changed(now)
            self._mass0 = mass_g
            self._t_load = now

    def set_pan(self, *, present: bool) -> None:
        """Take the pan off (the balance shows underload) or put it back."""
        with self._lock:
            now = self._clock()
            self._changed(now)
            self._pan_off = not present

    def tare(self) -> str | None:
        """Tare (net = 0 at the current load). Returns a refusal reason, or ``None``."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state.overload or state.underload:
                return "cannot tare outside the weighing range"
            if state.adjusting:
                return "adjustment running"
            self._tare = self._gross(now)
            self._resettle(now)
            return None

    def zero(self) -> str | None:
        """Zero (gross = 0), allowed only within the zero range. Returns a refusal reason."""
        with self._lock:
            now = self._clock()
            if now < self._adjust_until:
                return "adjustment running"
            gross = self._gross(now)
            if abs(gross) > self.config.zero_range_g:
                return f"load {gross:.4f} g is outside the zero range"
            self._zero_offset += gross
            self._tare = 0.0
            self._resettle(now)
            self._busy_until = now + self.config.zero_busy_s
            return None

    def tare_zero(self) -> str | None:
        """The TARE key (SBI ``ESC T``): zero within the zero range, otherwise tare."""
        with self._lock:
            within = abs(self._gross(self._clock())) <= self.config.zero_range_g
        return self.zero() if within else self.tare()

    def internal_adjust(self) -> str | None:
        """Start an internal adjustment; readings are unstable until it ends."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state.overload or state.underload:
                return "cannot adjust outside the weighing range"
            if state.adjusting:
                return "adjustment already running"
            self._changed(now)
            self._adjust_until = now + self.config.adjust_s
            return None
