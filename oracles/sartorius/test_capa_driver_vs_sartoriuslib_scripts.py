"""capa's driver against sartoriuslib's scripted balance (its frames captured on balances).

The pty answers only requests that are keys of a script built with sartoriuslib's own
helpers (``build_identify_script``, ``canned_frames``, ``build_command``,
``build_sbi_identify_script``, ``parse_sbi_fixture``): capa's requests must be
byte-identical to the validated client's, and capa must decode the captured replies.
"""

from __future__ import annotations

import math
import time

import anyio
import pytest
from sartoriuslib.commands.calibration import INTERNAL_ADJUST_CAL_TYPE
from sartoriuslib.protocol.sbi import SBI_COMMAND_TOKENS
from sartoriuslib.protocol.xbpi import build_command, checksum, encode_tlv
from sartoriuslib.testing import (
    build_identify_script,
    build_sbi_identify_script,
    canned_frames,
    parse_sbi_fixture,
    parse_xbpi_fixture,
)

import capa
from capa_sartorius.adapter import SartoriusBalance
from capa_sartorius.params import BalanceParams


def _rx(subtype: int, body: bytes) -> bytes:
    """A balance reply frame assembled from the documented layout with sartoriuslib's checksum."""
    pre = bytes([len(body) + 3, 0x41, subtype]) + body
    return pre + bytes([checksum(pre)])


OFF_SCALE_NET = _rx(0x48, bytes.fromhex("7fffffffff304205"))  # sentinel in bytes 0-4
STATUS_OVERLOAD = _rx(0x48, bytes.fromhex("0000818208100045"))  # state 0x82
STATUS_UNDERLOAD = _rx(0x48, bytes.fromhex("0000818408100045"))  # state 0x84
ERR_NOT_APPLICABLE = _rx(0x01, b"\x06")
# Gross-weight reply captured on an MSE1203S (sartoriuslib's snapshot.json): 326.185 g.
RX_GROSS_MSE = bytes.fromhex("0b414843a317ae14304203c8")


def _adapter(port, protocol, **kw):
    params = BalanceParams(port=port.path, protocol=protocol, timeout_s=0.5, retries=0, **kw)
    adapter = SartoriusBalance("balance", params)
    anyio.run(adapter.open)
    return adapter


def _tick(adapter):
    emissions = anyio.run(adapter.read)
    [batch] = [e for e in emissions if isinstance(e, capa.SampleBatch)]
    events = [e for e in emissions if isinstance(e, capa.DeviceEvent)]
    return batch, events


def test_xbpi_handshake_with_the_identify_script(script_port):
    port = script_port(build_identify_script(), "xbpi")
    params = BalanceParams(port=port.path, protocol="xbpi", timeout_s=0.5)
    result = anyio.run(SartoriusBalance.handshake, params)
    assert port.unanswered == []
    assert result.ok, result.detail
    assert result.identity["model"] == "MSE1203S-100-DR"
    assert result.identity["serial"] == "0031801165"
    assert result.identity["software"] == "00-39-21"


def test_xbpi_poll_decodes_the_captured_empty_pan_reading(script_port):
    port = script_port({canned_frames.TX_READ_NET: canned_frames.RX_NET_WEIGHT_EMPTY_PAN}, "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        batch, events = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    assert events == []
    assert batch.values["mass"] == [pytest.approx(-0.005)]
    assert batch.values["stable"] == [1.0]
    assert batch.status["mass"] == ["ok"]


def test_xbpi_gross_is_read_with_the_validated_request(script_port):
    script = {
        canned_frames.TX_READ_NET: canned_frames.RX_NET_WEIGHT_EMPTY_PAN,
        build_command(0x20): RX_GROSS_MSE,
    }
    port = script_port(script, "xbpi")
    adapter = _adapter(port, "xbpi", gross=True)
    try:
        batch, _ = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    assert batch.values["gross"] == [pytest.approx(326.185)]


@pytest.mark.parametrize(
    ("status_frame", "flag", "sample_status"),
    [(STATUS_OVERLOAD, "overload", "overload"), (STATUS_UNDERLOAD, "underload", "underrange")],
)
def test_xbpi_off_scale_reading_asks_the_status_block(
    script_port, status_frame, flag, sample_status
):
    script = {
        canned_frames.TX_READ_NET: OFF_SCALE_NET,
        canned_frames.TX_READ_STATUS_BLOCK: status_frame,
    }
    port = script_port(script, "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        batch, _ = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    assert math.isnan(batch.values["mass"][0])
    assert batch.values[flag] == [1.0]
    assert batch.status["mass"] == [sample_status]


def test_xbpi_off_scale_with_a_stable_status_is_a_busy_cell(script_port):
    script = {
        canned_frames.TX_READ_NET: OFF_SCALE_NET,
        canned_frames.TX_READ_STATUS_BLOCK: canned_frames.RX_STATUS_STABLE_CUBIS,
    }
    port = script_port(script, "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        batch, _ = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert batch.values["overload"] == [0.0]
    assert batch.values["underload"] == [0.0]
    assert batch.status["mass"] == ["unstable"]


@pytest.mark.parametrize(
    ("command", "request_frame"),
    [
        ("tare", canned_frames.TX_TARE),
        ("zero", canned_frames.TX_ZERO),
        ("internal_adjust", build_command(0x28, encode_tlv(0x21, INTERNAL_ADJUST_CAL_TYPE))),
    ],
)
def test_xbpi_commands_match_the_validated_requests(script_port, command, request_frame):
    port = script_port({request_frame: canned_frames.RX_ACK}, "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        result = anyio.run(adapter.command, capa.Command(command))
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    assert result.accepted, result.detail


def test_xbpi_refusal_is_not_accepted_and_names_the_code(script_port):
    port = script_port({canned_frames.TX_TARE: ERR_NOT_APPLICABLE}, "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        result = anyio.run(adapter.command, capa.Command("tare"))
    finally:
        anyio.run(adapter.close)
    assert not result.accepted
    assert "0x06" in result.detail


def test_xbpi_text_fixture_format(script_port):
    fixture = """
    # read net weight, as in sartoriuslib's fixture format
    > 04 01 09 1e 2c
    < 0b 41 48 bb a3 d7 0a 3d 30 82 45 07
    """
    port = script_port(parse_xbpi_fixture(fixture), "xbpi")
    adapter = _adapter(port, "xbpi")
    try:
        batch, _ = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    assert batch.values["mass"] == [pytest.approx(-0.005)]


def test_sbi_handshake_with_the_sbi_identify_script(script_port):
    port = script_port(
        build_sbi_identify_script(model="WZA8202-N", serial="12345678", software="1.0"), "sbi"
    )
    params = BalanceParams(port=port.path, protocol="sbi", timeout_s=0.5)
    result = anyio.run(SartoriusBalance.handshake, params)
    assert port.unanswered == []
    assert result.ok, result.detail
    assert (result.identity["model"], result.identity["serial"]) == ("WZA8202-N", "12345678")
    assert result.identity["software"] == "1.0"


@pytest.mark.parametrize(
    ("reply", "mass", "stable", "status"),
    [
        # Lines as printed by balances (sartoriuslib's documented / live-captured output).
        ("+     0.00 g  ", 0.0, 1.0, "ok"),
        ("-   12.345 mg ", -0.012345, 1.0, "ok"),
        ("N     +    0.006 g  ", 0.006, 1.0, "ok"),
        ("N     +    0.031    ", 0.031, 0.0, "unstable"),
        ("Stat     Cal.Int.", math.nan, 0.0, "unstable"),
    ],
)
def test_sbi_print_replies(script_port, reply, mass, stable, status):
    # parse_sbi_fixture strips trailing blanks; the balance pads lines to 16 / 22 bytes.
    script = parse_sbi_fixture(f"> ESC P\n< {reply}")
    script = {k: v[:-2].ljust(20 if len(v) > 16 else 14) + b"\r\n" for k, v in script.items()}
    port = script_port(script, "sbi")
    adapter = _adapter(port, "sbi")
    try:
        batch, _ = _tick(adapter)
    finally:
        anyio.run(adapter.close)
    assert port.unanswered == []
    if math.isnan(mass):
        assert math.isnan(batch.values["mass"][0])
    else:
        assert batch.values["mass"] == [pytest.approx(mass)]
    assert batch.values["stable"] == [stable]
    assert batch.status["mass"] == [status]


def test_sbi_commands_are_the_validated_tokens(script_port):
    # SBI commands get no reply; the script answers each with a print line so that the
    # test sees which tokens arrived.
    line = b"+     1.00 g  \r\n"
    port = script_port({b"\x1bU": line, b"\x1bV": line, b"\x1bZ": line}, "sbi")
    adapter = _adapter(port, "sbi")
    try:
        for name in ("tare", "zero", "internal_adjust"):
            assert anyio.run(adapter.command, capa.Command(name)).accepted
    finally:
        anyio.run(adapter.close)
    deadline = time.monotonic() + 2.0
    while len(port.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert port.requests == [b"\x1bU", b"\x1bV", b"\x1bZ"]
    assert port.unanswered == []
    names = [SBI_COMMAND_TOKENS[token] for token in port.requests]
    assert names == ["tare", "zero", "internal_adjust"]
