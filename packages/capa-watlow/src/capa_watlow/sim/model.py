"""A simulated EZ-Zone PM: first-order thermal plant, output power, identity, parameters.

The model is protocol-free and works in °C; :mod:`capa_watlow.sim.bus` puts it on the wire
in either protocol and converts temperatures to the bus's communications unit.
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from capa_watlow.params import IDENTITY, LOOP_PARAMETERS, ParamKind, ParamSpec, by_id

__all__ = ["ControllerModel", "Refusal", "RefusalReason"]

SETPOINT_RANGE_C = (-200.0, 1500.0)
"""Set points the simulated controller accepts (its Minimum/Maximum Set Point)."""


class RefusalReason(enum.Enum):
    """Why the simulated controller declined a request (mapped to each protocol's codes)."""

    NO_PARAMETER = "no such parameter"
    NO_INSTANCE = "no such instance"
    READ_ONLY = "parameter is read-only"
    OUT_OF_RANGE = "value out of range"


class Refusal(Exception):
    """Raised by the model when the controller would answer with an error."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class _Loop:
    setpoint_c: float
    start_pv_c: float
    since: float


class ControllerModel:
    """One controller at one bus address.

    Each loop's process value relaxes exponentially towards its set point with time
    constant ``tau_s`` (a first-order plant with an ideal controller); heat power is
    what holding the set point against ambient costs plus a term proportional to the
    remaining error. Thread-safe: the bus thread and tests may touch it concurrently.

    Args:
        address: bus address (1-16 on Standard Bus; Modbus unit id on Modbus).
        instances: number of control loops.
        ambient_c: ambient temperature; every loop starts there with that set point.
        tau_s: plant time constant in seconds (tests use small values).
        seed: seeds the measurement noise, so a run is reproducible.
        noise_c: standard deviation of the process value noise.
        clock: monotonic time source in seconds (injectable for tests).
        serial: reported as part of the identity, for telling controllers apart.
    """

    def __init__(
        self,
        address: int,
        *,
        instances: int = 2,
        ambient_c: float = 25.0,
        tau_s: float = 30.0,
        seed: int = 0,
        noise_c: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        serial: int = 0,
    ) -> None:
        self.address = address
        self.instances = instances
        self.ambient_c = ambient_c
        self.tau_s = tau_s
        self.noise_c = noise_c
        self._clock = clock
        self._rng = random.Random(seed * 1009 + address)
        self._lock = threading.Lock()
        now = clock()
        self._loops = [_Loop(ambient_c, ambient_c, now) for _ in range(instances)]
        self._identity: dict[int, int] = {
            1001: 5,  # hardware id of the simulated PM
            1002: 1,
            1003: 12,
            1005: 100 + serial,
        }

    # ---------------------------------------------------------------- physics
    def _pv(self, loop: _Loop, now: float) -> float:
        elapsed = max(0.0, now - loop.since)
        decay = math.exp(-elapsed / self.tau_s) if self.tau_s > 0 else 0.0
        return loop.setpoint_c + (loop.start_pv_c - loop.setpoint_c) * decay

    def _loop(self, instance: int) -> _Loop:
        if not 1 <= instance <= self.instances:
            raise Refusal(RefusalReason.NO_INSTANCE)
        return self._loops[instance - 1]

    def process_value(self, instance: int = 1) -> float:
        """Current process value of ``instance`` in °C."""
        with self._lock:
            pv = self._pv(self._loop(instance), self._clock())
            return pv + (self._rng.gauss(0.0, self.noise_c) if self.noise_c else 0.0)

    def setpoint(self, instance: int = 1) -> float:
        """Closed-loop set point of ``instance`` in °C."""
        with self._lock:
            return self._loop(instance).setpoint_c

    def output_power(self, instance: int = 1) -> float:
        """Heat power of ``instance`` in percent (0-100)."""
        with self._lock:
            loop = self._loop(instance)
            error = loop.setpoint_c - self._pv(loop, self._clock())
            holding = (loop.setpoint_c - self.ambient_c) / 10.0  # 1 % per 10 °C above ambient
            return min(100.0, max(0.0, holding + 5.0 * error))

    def set_setpoint(self, value_c: float, instance: int = 1) -> float:
        """Change the set point; the plant starts relaxing towards it from where it is."""
        if not (SETPOINT_RANGE_C[0] <= value_c <= SETPOINT_RANGE_C[1]) or math.isnan(value_c):
            raise Refusal(RefusalReason.OUT_OF_RANGE)
        with self._lock:
            loop = self._loop(instance)
            now = self._clock()
            loop.start_pv_c = self._pv(loop, now)
            loop.since = now
            loop.setpoint_c = value_c
            return value_c

    # ---------------------------------------------------------------- parameter table
    def read(self, param_id: int, instance: int) -> tuple[float, ParamSpec]:
        """Value of a parameter (temperatures in °C) and its spec; raises :class:`Refusal`."""
        spec = by_id(param_id)
        if spec is None:
            raise Refusal(RefusalReason.NO_PARAMETER)
        if spec in IDENTITY:
            if instance != 1:
                raise Refusal(RefusalReason.NO_INSTANCE)
            return float(self._identity[param_id]), spec
        readers = {
            "process_value": self.process_value,
            "setpoint": self.setpoint,
            "output_power": self.output_power,
        }
        return readers[spec.name](instance), spec

    def write(self, param_id: int, instance: int, value: float) -> tuple[float, ParamSpec]:
        """Write a parameter (temperatures in °C); returns the stored value and the spec."""
        spec = by_id(param_id)
        if spec is None:
            raise Refusal(RefusalReason.NO_PARAMETER)
        if spec in LOOP_PARAMETERS:
            self._loop(instance)  # refuse a missing instance before a read-only write
        if not spec.writable:
            raise Refusal(RefusalReason.READ_ONLY)
        if spec.kind is not ParamKind.FLOAT:  # pragma: no cover - every writable one is float
            raise Refusal(RefusalReason.READ_ONLY)
        return self.set_setpoint(value, instance), spec
