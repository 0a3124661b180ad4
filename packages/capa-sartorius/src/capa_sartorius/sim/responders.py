"""Protocol front ends of the simulated balance: bytes in, bytes out, no I/O.

Each responder splits the incoming stream into commands with the same rules a balance
uses, asks the :class:`BalanceModel` and encodes the answer in the protocol's wire format.
"""

from __future__ import annotations

from typing import Protocol

from capa_sartorius import sbi
from capa_sartorius.framing import SbiCommandSplitter
from capa_sartorius.sim.model import BalanceModel

__all__ = ["INTER_BYTE_TIMEOUT_S", "Responder", "SbiResponder", "make_responder", "to_unit"]

INTER_BYTE_TIMEOUT_S = 0.1
"""Silence after which the simulated xBPI balance drops an incomplete frame."""


class Responder(Protocol):
    """Turns received bytes into replies for one protocol."""

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes from the host -> replies to send, in order."""

    def autoprint_line(self) -> bytes | None:
        """The line an autoprinting balance sends now (``None``: protocol has none)."""


def to_unit(grams: float, model: BalanceModel) -> float:
    """``grams`` in the unit the simulated balance displays."""
    from capa_sartorius.reading import UNIT_TO_GRAMS

    return grams / UNIT_TO_GRAMS[model.config.unit]


class SbiResponder:
    """SBI: ESC commands in, 16- or 22-character lines out.

    Args:
        model: the balance.
        ident: prefix weight lines with the 6-character header ``N`` (22-character lines).
    """

    def __init__(self, model: BalanceModel, *, ident: bool = False) -> None:
        self.model = model
        self.ident = ident
        self._split = SbiCommandSplitter()

    def weight_line(self) -> bytes:
        """The current reading as an SBI line."""
        state = self.model.state()
        header = "N" if self.ident else None
        if state.overload:
            return sbi.format_special("High", ident=header)
        if state.underload:
            return sbi.format_special("Low", ident=header)
        return sbi.format_weight(
            to_unit(state.net_g, self.model),
            self.model.config.unit,
            stable=state.stable,
            decimals=self.model.config.decimals,
            ident=header,
        )

    def autoprint_line(self) -> bytes | None:
        """Autoprint sends the same line as a print command."""
        return self.weight_line()

    def feed(self, data: bytes) -> list[bytes]:
        """Handle every complete command in ``data``."""
        replies = []
        for raw in self._split.feed(data):
            try:
                code = sbi.parse_command(raw)
            except sbi.SbiParseError:
                continue  # a balance ignores what it cannot read
            reply = self._handle(code)
            if reply is not None:
                replies.append(reply)
        return replies

    def _handle(self, code: str) -> bytes | None:
        cfg = self.model.config
        if code == "P":
            return self.weight_line()
        if code == "x1_":
            return sbi.format_text(cfg.model)
        if code == "x2_":
            # As a Cubis prints it: a 6-character label, the value right aligned in 14.
            return sbi.format_text(f"{'SerNo.':<6}{cfg.serial:>14}")
        if code == "x3_":
            return sbi.format_text(f"{'BAC:':<6}{cfg.software:>14}")
        actions = {
            "T": self.model.tare_zero,
            "U": self.model.tare,
            "V": self.model.zero,
            "Z": self.model.internal_adjust,
        }
        action = actions.get(code)
        if action is not None:
            action()  # SBI acknowledges nothing: a refused command just has no effect
        return None


def make_responder(
    protocol: str, model: BalanceModel, *, sbn: int = 0x00, ident: bool = False
) -> Responder:
    """The responder for ``protocol`` (``sbi`` or ``xbpi``); ``ident``: 22-character lines.

    ``sbn`` is the simulated balance's own xBPI bus node number (factory setting 0).
    """
    from capa_sartorius.sim.xbpi_responder import XbpiResponder

    if protocol == "sbi":
        return SbiResponder(model, ident=ident)
    if protocol == "xbpi":
        return XbpiResponder(model, sbn=sbn)
    raise ValueError(f"unknown Sartorius protocol {protocol!r} (expected 'sbi' or 'xbpi')")
