"""Parameters of the ``watlow.ezzone_pm`` adapter (the ``params`` table of a device)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

import capa
from capa_watlow.params import MAX_LOOPS
from capa_watlow.sim.url import is_sim_url, parse_sim_url

__all__ = ["DEFAULT_BAUD", "EzZonePMParams", "field_suffix"]

DEFAULT_BAUD = {"stdbus": 38400, "modbus_rtu": 9600}
"""Factory line speeds: Standard Bus 38 400 baud, Modbus RTU 9 600 baud."""


def field_suffix(instance: int) -> str:
    """Suffix of a loop's field names: none for loop 1, ``_<n>`` for loop *n*."""
    return "" if instance == 1 else f"_{instance}"


class EzZonePMParams(capa.ConfigModel):
    """Connection and sampling options of one EZ-Zone PM controller.

    Attributes:
        port: serial device (``/dev/ttyUSB0``, ``COM3``) or ``sim://[?options]``.
        address: Standard Bus address (1-16) or Modbus unit id (1-247).
        protocol: ``stdbus`` (factory default) or ``modbus_rtu``.
        baudrate: line speed; default 38400 for Standard Bus, 9600 for Modbus RTU.
        instances: loop numbers to sample (``[1]``; ``[1, 2]`` for a two-loop PM). The PM
            register map defines two loops; 3 and 4 are refused, never guessed.
        poll_rate_hz: reads per second.
        timeout_s: reply timeout per request.
        retries: extra attempts per request before the tick is a comm error.
        reconnect: ``next_tick`` re-opens the port on the tick after a failure;
            ``never`` leaves the device failed (every later tick reports comm_error).
        reconnect_max_delay_s: cap of the exponential back-off between reconnect attempts.
        wire_unit: temperature unit the controller uses on the bus (its communications
            unit, which may differ from its display).
        unit: unit in which temperature fields are reported and set points are given.
        word_order: Modbus order of the two words of 32-bit values, as the controller's
            Modbus Word Order (17043) is set (factory default ``low_high``: low word
            first). Checked when the device opens; a mismatch is refused.
        parity: Modbus RTU parity, as the controller's Parity (Modbus) 17003 is set
            (factory default ``none``; 8 data bits, 1 stop bit). Standard Bus is 8N1.
    """

    port: str
    address: int = Field(1, ge=1, le=247)
    protocol: Literal["stdbus", "modbus_rtu"] = "stdbus"
    baudrate: int | None = Field(None, gt=0)
    instances: tuple[int, ...] = (1,)
    poll_rate_hz: float = Field(1.0, gt=0, le=100)
    timeout_s: float = Field(0.5, gt=0, le=30)
    retries: int = Field(1, ge=0, le=10)
    reconnect: Literal["next_tick", "never"] = "next_tick"
    reconnect_max_delay_s: float = Field(10.0, ge=0)
    wire_unit: Literal["degC", "degF", "K"] = "degF"
    unit: Literal["degC", "degF", "K"] = "degC"
    word_order: Literal["low_high", "high_low"] = "low_high"
    parity: Literal["none", "even", "odd"] = "none"

    @field_validator("port")
    @classmethod
    def _port(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("port must name a serial device or sim://")
        if is_sim_url(value):
            parse_sim_url(value)  # raises ValueError naming the bad option
        return value

    @field_validator("instances")
    @classmethod
    def _instances(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("instances must be distinct loop numbers, at least one")
        if not all(1 <= i <= MAX_LOOPS for i in value):
            raise ValueError(
                f"instances must be loops 1-{MAX_LOOPS}: the EZ-Zone PM register map defines "
                f"{MAX_LOOPS} loops (got {list(value)})"
            )
        return value

    @model_validator(mode="after")
    def _address_fits_protocol(self) -> EzZonePMParams:
        if self.protocol == "stdbus" and self.address > 16:
            raise ValueError(f"Standard Bus addresses are 1-16, got {self.address}")
        if self.protocol == "stdbus" and self.parity != "none":
            raise ValueError("parity applies to Modbus RTU only (Standard Bus runs 8N1)")
        return self

    @property
    def line_speed(self) -> int:
        """The baud rate to use (explicit or the protocol's factory default)."""
        return self.baudrate or DEFAULT_BAUD[self.protocol]
