"""Protocol front ends of the simulated balance: bytes in, bytes out, no I/O.

Each responder splits the incoming stream into commands with the same rules a balance
uses, asks the :class:`BalanceModel` and encodes the answer in the protocol's wire format.
"""

from __future__ import annotations

import time
from typing import Protocol

from capa_sartorius import sbi, xbpi
from capa_sartorius.framing import SbiCommandSplitter, XbpiSplitter
from capa_sartorius.sim.model import BalanceModel, BalanceState

__all__ = ["INTER_BYTE_TIMEOUT_S", "Responder", "SbiResponder", "XbpiResponder", "make_responder"]

INTER_BYTE_TIMEOUT_S = 0.1
"""Silence after which the simulated xBPI balance drops an incomplete telegram."""


class Responder(Protocol):
    """Turns received bytes into replies for one protocol."""

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes from the host -> replies to send, in order."""

    def autoprint_line(self) -> bytes | None:
        """The line an autoprinting balance sends now (``None``: protocol has none)."""


def _to_unit(state: BalanceState, model: BalanceModel) -> float:
    from capa_sartorius.reading import UNIT_TO_GRAMS

    return state.net_g / UNIT_TO_GRAMS[model.config.unit]


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
            _to_unit(state, self.model),
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
            return sbi.format_text(cfg.serial)
        if code == "x3_":
            return sbi.format_text(cfg.software)
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


class XbpiResponder:
    """xBPI: request telegrams in, reply telegrams out.

    A telegram with a bad checksum or for another address gets no reply, as on a bus.
    """

    def __init__(self, model: BalanceModel, *, address: int = 1) -> None:
        self.model = model
        self.address = address
        self._split = XbpiSplitter(gap_s=INTER_BYTE_TIMEOUT_S)

    def autoprint_line(self) -> bytes | None:
        """Nothing: xBPI has no autoprint, the host polls."""
        return None

    def feed(self, data: bytes) -> list[bytes]:
        """Handle every complete telegram in ``data``."""
        replies = []
        for frame in self._split.feed(data, time.monotonic()):
            try:
                request = xbpi.decode_request(frame)
            except xbpi.XbpiError:
                continue
            if request.address != self.address:
                continue
            replies.append(self._handle(request))
        return replies

    def _reply(self, command: int, params: tuple[xbpi.Param, ...] = ()) -> bytes:
        return xbpi.encode_reply(command, params, address=self.address)

    def _error(self, command: int, code: int) -> bytes:
        return xbpi.encode_reply(command, (code,), ok=False, address=self.address)

    def _handle(self, request: xbpi.Request) -> bytes:
        cfg = self.model.config
        cmd = request.command
        if cmd == xbpi.CMD_READ_WEIGHT:
            state = self.model.state()
            params = xbpi.weight_params(
                round(_to_unit(state, self.model), cfg.decimals),
                cfg.unit,
                stable=state.stable,
                overload=state.overload,
                underload=state.underload,
            )
            return self._reply(cmd, params)
        texts = {
            xbpi.CMD_READ_MODEL: cfg.model,
            xbpi.CMD_READ_SERIAL: cfg.serial,
            xbpi.CMD_READ_SOFTWARE: cfg.software,
        }
        if cmd in texts:
            return self._reply(cmd, (texts[cmd],))
        actions = {
            xbpi.CMD_TARE: self.model.tare,
            xbpi.CMD_ZERO: self.model.zero,
            xbpi.CMD_INTERNAL_ADJUST: self.model.internal_adjust,
        }
        action = actions.get(cmd)
        if action is None:
            return self._error(cmd, xbpi.ERROR_UNKNOWN_COMMAND)
        busy = self.model.state().adjusting
        if action() is None:
            return self._reply(cmd)
        return self._error(cmd, xbpi.ERROR_BUSY if busy else xbpi.ERROR_NOT_POSSIBLE)


def make_responder(
    protocol: str, model: BalanceModel, *, address: int = 1, ident: bool = False
) -> Responder:
    """The responder for ``protocol`` (``sbi`` or ``xbpi``); ``ident``: 22-character lines."""
    if protocol == "sbi":
        return SbiResponder(model, ident=ident)
    if protocol == "xbpi":
        return XbpiResponder(model, address=address)
    raise ValueError(f"unknown Sartorius protocol {protocol!r} (expected 'sbi' or 'xbpi')")
