"""The simulated balance's xBPI front end: request frames in, reply frames as a balance sends.

It answers the opcodes a Cubis answers (as captured on real balances and spoken by the
independent client ``sartoriuslib``): identity, net / gross / tare weights at standard and
high resolution, status, tare, zero, internal adjustment, capacity / increment, the
display-unit and filter parameters, the SBN and the configuration counter. An opcode it
does not implement gets the balance's "unknown opcode" error (``0x04``); a required
argument that is missing or malformed gets ``0x07``; a refused action ``0x06``. A frame
with a bad checksum gets no reply.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from capa_sartorius import xbpi
from capa_sartorius.framing import XbpiSplitter
from capa_sartorius.sim.model import BalanceModel, BalanceState
from capa_sartorius.sim.responders import INTER_BYTE_TIMEOUT_S, to_unit

__all__ = ["XbpiResponder"]

_DISPLAY_UNIT_PARAM = {"g": 2, "kg": 3, "mg": 13}
"""Parameter 7 (display unit) values for the units the simulator shows."""
_SEQUENCE_HZ = 10.0  # the status block's measurement counter advances at the cycle rate


def _hex_bytes(text: str, size: int, what: str) -> bytes:
    digits = text.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError as exc:
        raise ValueError(f"simulated balance {what} {text!r} must be hex digits") from exc
    if len(raw) != size:
        raise ValueError(f"simulated balance {what} {text!r} must be {2 * size} hex digits")
    return raw


class XbpiResponder:
    """xBPI requests in, replies out, for one simulated balance.

    Args:
        model: the balance.
        sbn: its own bus node number; it also answers the factory address ``0x09``.
    """

    def __init__(self, model: BalanceModel, *, sbn: int = 0x00) -> None:
        cfg = model.config
        if cfg.unit not in _DISPLAY_UNIT_PARAM:
            raise ValueError(f"the xBPI simulator shows g, kg or mg, not {cfg.unit!r}")
        self.model = model
        self.sbn = sbn
        self._split = XbpiSplitter(gap_s=INTER_BYTE_TIMEOUT_S)
        # Identity as a Cubis encodes it: 5-byte factory number, 10-byte software blob.
        self._factory = _hex_bytes(cfg.serial, 5, "serial")
        version = _hex_bytes(cfg.software, 3, "software")
        self._software = version + bytes([0, version[1], 1, version[1], 1, 0, 1])
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            xbpi.OP_READ_SOFTWARE: lambda _: self._ok(xbpi.SUB_SOFTWARE, self._software),
            xbpi.OP_READ_FACTORY_NUMBER: lambda _: self._ok(xbpi.SUB_FACTORY_NUMBER, self._factory),
            xbpi.OP_READ_MODEL: lambda _: self._ok(
                xbpi.SUB_TEXT20, xbpi.encode_text(cfg.model, 20)
            ),
            0x05: lambda _: self._ok(xbpi.SUB_TEXT16, xbpi.encode_text("Sartorius", 16)),
            xbpi.OP_READ_MANUFACTURER: lambda _: self._ok(
                xbpi.SUB_TEXT16, xbpi.encode_text("Sartorius", 16)
            ),
            xbpi.OP_READ_CAPACITY: lambda a: self._metrology(a, cfg.capacity_g),
            xbpi.OP_READ_INCREMENT: lambda a: self._metrology(a, 10.0**-cfg.decimals),
            xbpi.OP_TARE: lambda a: self._action(a, self.model.tare),
            xbpi.OP_ZERO: lambda a: self._action(a, self.model.zero),
            xbpi.OP_READ_NET: lambda a: self._weight(a, "net", hires=False),
            0x1F: lambda a: self._weight(a, "net", hires=True),
            xbpi.OP_READ_GROSS: lambda a: self._weight(a, "gross", hires=False),
            0x21: lambda a: self._weight(a, "gross", hires=True),
            xbpi.OP_READ_TARE: lambda a: self._weight(a, "tare", hires=False),
            xbpi.OP_START_ADJUSTMENT: self._adjust,
            xbpi.OP_READ_STATUS_BLOCK: lambda _: self._status_block(),
            0x32: lambda _: self._status_short(),
            0x55: self._parameter,
            0x67: lambda _: self._ok(xbpi.SUB_ACK),  # no-operation
            xbpi.OP_READ_SBN: lambda _: self._ok(xbpi.SUB_U8, bytes([self.sbn])),
            0xBA: lambda _: self._ok(xbpi.SUB_U8, b"\x01"),  # configuration counter
            0xFF: lambda _: self._ok(xbpi.SUB_ACK),  # no-operation
        }

    def autoprint_line(self) -> bytes | None:
        """Nothing: an xBPI balance only answers requests."""
        return None

    def feed(self, data: bytes) -> list[bytes]:
        """Handle every complete request frame in ``data``."""
        replies = []
        for frame in self._split.feed(data, time.monotonic()):
            try:
                request = xbpi.decode_request(frame)
            except xbpi.XbpiError:
                continue  # a corrupted frame: the balance cannot know it was addressed
            if request.dst not in (self.sbn, xbpi.BALANCE_SBN_DEFAULT):
                continue  # for another node on the bus
            handler = self._handlers.get(request.opcode)
            if handler is None:
                replies.append(self._error(xbpi.ERR_UNKNOWN_OPCODE))
            else:
                replies.append(handler(request.args))
        return replies

    # ------------------------------------------------------------------ replies
    @staticmethod
    def _ok(subtype: int, body: bytes = b"") -> bytes:
        return xbpi.encode_reply(subtype, body)

    @staticmethod
    def _error(code: int) -> bytes:
        return xbpi.encode_reply(xbpi.SUB_ERROR, bytes([code]))

    @staticmethod
    def _u8_arg(args: bytes) -> int | None:
        if len(args) != 2 or args[0] != xbpi.TLV_U8:
            return None
        return args[1]

    def _action(self, args: bytes, action: Callable[[], str | None]) -> bytes:
        if args:
            return self._error(xbpi.ERR_BAD_ARGS)
        if action() is not None:
            return self._error(xbpi.ERR_NOT_APPLICABLE)
        return self._ok(xbpi.SUB_ACK)

    def _adjust(self, args: bytes) -> bytes:
        kind = self._u8_arg(args)
        if kind is None:
            return self._error(xbpi.ERR_BAD_ARGS)
        if not 0x70 <= kind <= 0x7B:
            return self._error(xbpi.ERR_OUT_OF_RANGE)
        if kind != xbpi.ADJUST_INTERNAL or self.model.internal_adjust() is not None:
            return self._error(xbpi.ERR_NOT_APPLICABLE)
        return self._ok(xbpi.SUB_ACK)

    def _weight(self, args: bytes, which: str, *, hires: bool) -> bytes:
        cfg = self.model.config
        if hires:
            # High resolution needs its factor: 1 = ten times, 2 = a hundred times.
            extra = self._u8_arg(args)
            if extra is None:
                return self._error(xbpi.ERR_BAD_ARGS)
            if extra not in (1, 2):
                return self._error(xbpi.ERR_OUT_OF_RANGE)
        else:
            if args not in (b"", xbpi.tlv_u8(0)):
                return self._error(xbpi.ERR_BAD_ARGS)
            extra = 0
        state = self.model.state()
        grams = {"net": state.net_g, "gross": state.gross_g, "tare": state.tare_g}[which]
        stable = state.stable if which != "tare" else True
        value: float | None = to_unit(grams, self.model)
        if which != "tare" and _off_scale(state):
            value = None
        body = xbpi.encode_measurement(
            value, cfg.unit, decimals=cfg.decimals + extra, stable=stable and value is not None
        )
        return self._ok(xbpi.SUB_MEASUREMENT, body)

    def _status_block(self) -> bytes:
        state = self.model.state()
        body = xbpi.encode_status_block(
            stable=state.stable and not state.busy,
            overload=state.overload,
            underload=state.underload,
            sequence=int(time.monotonic() * _SEQUENCE_HZ),
        )
        return self._ok(xbpi.SUB_MEASUREMENT, body)

    def _status_short(self) -> bytes:
        block = xbpi.decode_status_block(xbpi.decode_reply(self._status_block()).body)
        return self._ok(0x22, bytes([block.state, block.status]))

    def _metrology(self, args: bytes, grams: float) -> bytes:
        area = self._u8_arg(args)
        if area is None:
            return self._error(xbpi.ERR_BAD_ARGS)
        if area > 3:
            return self._error(xbpi.ERR_INDEX)
        return self._ok(xbpi.SUB_TYPED_FLOAT, struct.pack(">f", to_unit(grams, self.model)) + b"\0")

    def _parameter(self, args: bytes) -> bytes:
        index = self._u8_arg(args)
        if index is None:
            return self._error(xbpi.ERR_BAD_ARGS)
        if index >= 80:
            return self._error(xbpi.ERR_OUT_OF_RANGE)
        # Only the parameters the simulator models; the rest of the table is not simulated.
        table = {1: (2, 4), 7: (_DISPLAY_UNIT_PARAM[self.model.config.unit], 24)}
        if index not in table:
            return self._error(xbpi.ERR_INDEX)
        current, maximum = table[index]
        return self._ok(xbpi.SUB_U8, bytes([current, xbpi.TLV_U8, maximum]))


def _off_scale(state: BalanceState) -> bool:
    return state.overload or state.underload or state.busy
