"""The ``params`` table of a ``sartorius.balance`` device in a hardware file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import capa

__all__ = ["BalanceParams"]


class BalanceParams(capa.ConfigModel):
    """Connection and sampling settings of a Sartorius balance.

    Serial defaults are the balances' factory settings for SBI: 9600 baud, 7 data bits,
    odd parity, 1 stop bit; xBPI is 8 data bits, odd parity (``bytesize`` follows the
    protocol unless set). Balances ship in SBI mode; xBPI is switched on in the menu.

    Attributes:
        port: serial device (``/dev/ttyUSB0``, ``COM3``) or ``sim://?...`` for the simulator.
        protocol: ``sbi`` (ASCII) or ``xbpi`` (binary).
        baudrate: bits per second, as set in the balance's interface menu.
        bytesize: data bits; ``None`` = 7 for SBI, 8 for xBPI.
        parity: ``none``, ``odd``, ``even``, ``mark`` or ``space``.
        stopbits: 1 or 2.
        rate_hz: polling rate (polled mode) or drain rate (autoprint mode).
        timeout_s: how long to wait for a reply (or, in autoprint mode, for a line).
        autoprint: the balance sends lines unprompted (SBI "auto print"); reads drain them.
        retries: extra attempts within one tick after no reply, garbage or a bad checksum.
        sbn: xBPI destination bus node number. ``9`` (the balance's factory SBN) is
            answered by a directly connected balance whatever SBN it is set to.
        gross: xBPI only: also read the gross weight each tick (field ``gross``).
    """

    port: str = Field(min_length=1)
    protocol: Literal["sbi", "xbpi"] = "sbi"
    baudrate: int = Field(default=9600, gt=0)
    bytesize: Literal[7, 8] | None = None
    parity: Literal["none", "odd", "even", "mark", "space"] = "odd"
    stopbits: Literal[1, 2] = 1
    rate_hz: float = Field(default=2.0, gt=0, le=100)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    autoprint: bool = False
    retries: int = Field(default=1, ge=0, le=10)
    sbn: int = Field(default=0x09, ge=0, le=0xFF)
    gross: bool = False

    @model_validator(mode="after")
    def _autoprint_needs_sbi(self) -> BalanceParams:
        if self.autoprint and self.protocol != "sbi":
            raise ValueError("autoprint is an SBI feature; xBPI balances are polled")
        if self.gross and self.protocol != "xbpi":
            raise ValueError("gross is read over xBPI only (SBI prints the displayed value)")
        return self

    @property
    def data_bits(self) -> int:
        """Effective data bits for the chosen protocol."""
        if self.bytesize is not None:
            return self.bytesize
        return 7 if self.protocol == "sbi" else 8
