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

from capa_watlow.params import (
    ENUM_HIGH_LOW,
    ENUM_LOW_HIGH,
    LOOP_PARAMETERS,
    PARAMETERS,
    ParamSpec,
    by_id,
)
from capa_watlow.stdbus import Value

__all__ = ["FACTORY", "ControllerModel", "Refusal", "RefusalReason"]

SETPOINT_RANGE_C = (-1128.0, 5537.0)
"""Set points the PM accepts by its factory Minimum/Maximum Set Point (PM map: -1,128 to
5,537 degC, i.e. -1,999 to 9,999 degF)."""

FACTORY_SETPOINT_C = (75.0 - 32.0) * 5.0 / 9.0
"""Factory Closed Loop Set Point: 75.0 degF (PM map, 7001 default)."""

FACTORY: dict[int, Value] = {
    1001: 28,  # Hardware ID: ARM CPU (28), as the captured PM3 answers
    1002: 9,  # Firmware ID
    1003: 12,  # Software Revision
    1005: 100,  # Software Build Number (+ the controller's serial, to tell units apart)
    1007: 0,  # Serial Number (replaced per controller)
    1009: "PM3R1CA-AAAAAAA",  # Part Number, as the captured PM3 answers
    1011: "EZ-ZONE PM",  # Device Name: factory default (PM map)
    1032: "",  # Serial Number as text (replaced per controller)
    8002: 10,  # Control Mode Active: Auto (10)
    17001: 1,  # Standard Bus Address (replaced by the controller's address)
    17002: 188,  # Baud Rate (Modbus): 9600 (188), factory default
    17003: 61,  # Parity (Modbus): None (61), factory default; Even 191, Odd 192
    17007: 1,  # Modbus Address (replaced by the controller's address)
    17009: 1286,  # Protocol: Standard Bus (1286), factory default; Modbus is 1057
    17043: ENUM_LOW_HIGH,  # Modbus Word Order: Low_High (1331), factory default
    17050: 30,  # Display Units: degF (30), factory default; degC is 15
}
"""The simulator's answers for the non-loop parameters (PM map factory defaults)."""

WORD_ORDER_ENUM = {"low_high": ENUM_LOW_HIGH, "high_low": ENUM_HIGH_LOW}
UNITS_ENUM = {"degF": 30, "degC": 15}

_CLASSES = {spec.param_class for spec in PARAMETERS}


class RefusalReason(enum.Enum):
    """Why the simulated controller declined a request (mapped to each protocol's codes)."""

    NO_OBJECT = "no such object (parameter class)"
    NO_ATTRIBUTE = "no such attribute (parameter member)"
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
        serial: the controller's serial number (identity), for telling controllers apart.
        setpoint_c: initial closed-loop set point (factory default 75 degF).
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
        setpoint_c: float = FACTORY_SETPOINT_C,
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
        self._loops = [_Loop(setpoint_c, ambient_c, now) for _ in range(instances)]
        self.settings: dict[int, Value] = {
            **FACTORY,
            1005: 100 + serial,
            1007: 1_000_000 + serial,
            1032: f"{1_000_000 + serial}",
            17001: min(address, 16),
            17007: address,
        }
        """Values of the non-loop parameters (identity, mode, communications)."""

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
    def _spec(self, param_id: int, instance: int) -> ParamSpec:
        spec = by_id(param_id)
        if spec is None:
            cls = param_id // 1000
            raise Refusal(
                RefusalReason.NO_ATTRIBUTE if cls in _CLASSES else RefusalReason.NO_OBJECT
            )
        limit = self.instances if spec in LOOP_PARAMETERS else spec.instances
        if not 1 <= instance <= limit:
            raise Refusal(RefusalReason.NO_INSTANCE)
        return spec

    def read(self, param_id: int, instance: int) -> tuple[Value, ParamSpec]:
        """Value of a parameter (temperatures in degC) and its spec; raises :class:`Refusal`.

        A class the PM does not have is *no such object*, a member of a known class
        *no such attribute*, an instance past the parameter's last *no such instance*
        -- the three refusals a PM3 sends.
        """
        spec = self._spec(param_id, instance)
        if spec in LOOP_PARAMETERS:
            readers = {
                "process_value": self.process_value,
                "setpoint": self.setpoint,
                "output_power": self.output_power,
            }
            return readers[spec.name](instance), spec
        with self._lock:
            return self.settings[param_id], spec

    def write(self, param_id: int, instance: int, value: Value) -> tuple[Value, ParamSpec]:
        """Write a parameter (temperatures in degC); returns the stored value and the spec."""
        spec = self._spec(param_id, instance)
        if not spec.writable:
            raise Refusal(RefusalReason.READ_ONLY)
        if spec.name == "setpoint":
            if isinstance(value, str):
                raise Refusal(RefusalReason.OUT_OF_RANGE)
            return self.set_setpoint(float(value), instance), spec
        if not isinstance(value, str) or len(value) > 32:  # Device Name: a short string
            raise Refusal(RefusalReason.OUT_OF_RANGE)
        with self._lock:
            self.settings[param_id] = value
        return value, spec
