"""Frames captured from real balances, decoded by capa's codecs and by sartoriuslib.

Byte values are facts: sartoriuslib's ``canned_frames`` (captured on MSE1203S / Cubis
units), the replies in its published MSE1203S snapshot, and 30 net-weight replies from its
60-second MSE1203S run (``data/mse1203s_xbpi_net.csv``, with the values recorded then).
capa must decode every one to the recorded value and agree with sartoriuslib's decoders.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sartoriuslib.protocol.xbpi import (
    decode_measurement_body,
    decode_status_block_body,
    parse_frame,
)
from sartoriuslib.testing import build_identify_script, canned_frames

from capa_sartorius import xbpi
from capa_sartorius.framing import XbpiSplitter

DATA = Path(__file__).parent / "data" / "mse1203s_xbpi_net.csv"


def _rows() -> list[dict[str, str]]:
    with DATA.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["raw"])
def test_mse1203s_net_weight_replies(row):
    raw = bytes.fromhex(row["raw"])
    reply = xbpi.decode_reply(raw)
    assert reply.subtype == xbpi.SUB_MEASUREMENT
    m = xbpi.decode_measurement(reply.body)
    recorded = float(row["value"])
    assert m.value == round(recorded, 3)
    assert m.decimals == 3
    assert m.unit == "g"
    assert m.stable is (row["stable"] == "1")
    # ... and the independent decoder agrees on every field.
    theirs = decode_measurement_body(parse_frame(raw).body)
    assert (round(theirs.value, theirs.decimals), theirs.stable) == (m.value, m.stable)
    assert theirs.unit.value == m.unit


def test_canned_empty_pan_reading():
    m = xbpi.decode_measurement(xbpi.decode_reply(canned_frames.RX_NET_WEIGHT_EMPTY_PAN).body)
    assert (m.value, m.unit, m.decimals, m.stable, m.off_scale) == (-0.005, "g", 3, True, False)


def test_canned_ack_and_sbn():
    assert xbpi.decode_reply(canned_frames.RX_ACK).subtype == xbpi.SUB_ACK
    assert xbpi.decode_reply(canned_frames.RX_ACK).body == b""
    sbn = xbpi.decode_reply(canned_frames.RX_SBN_00)
    assert (sbn.subtype, sbn.body) == (0x21, b"\x00")


def test_canned_status_block_is_stable_cubis():
    block = xbpi.decode_status_block(xbpi.decode_reply(canned_frames.RX_STATUS_STABLE_CUBIS).body)
    theirs = decode_status_block_body(parse_frame(canned_frames.RX_STATUS_STABLE_CUBIS).body)
    assert (block.state, block.status) == (0x88, 0x18)
    assert (block.stable, block.overload, block.underload) == (True, False, False)
    assert (theirs.stable, theirs.overload, theirs.underload) == (True, False, False)


@pytest.mark.parametrize(
    ("frame", "model"),
    [
        (canned_frames.RX_MODEL_MSE, "MSE1203S-100-DR"),
        (canned_frames.RX_MODEL_WZA, "WZA8202-N"),
        (canned_frames.RX_MODEL_BCE, "BCE3202-1S"),
        (canned_frames.RX_MANUFACTURER_SARTORIUS, "Sartorius"),
    ],
)
def test_canned_identity_texts(frame, model):
    assert xbpi.decode_text(xbpi.decode_reply(frame).body) == model


def test_canned_serial_and_software():
    serial = xbpi.decode_reply(canned_frames.RX_FACTORY_NUMBER_MSE)
    software = xbpi.decode_reply(canned_frames.RX_SW_VERSION_MSE)
    assert xbpi.decode_factory_number(serial.body) == "0031801165"
    assert xbpi.decode_software(software.body) == "00-39-21"


# Replies captured from an MSE1203S in sartoriuslib's snapshot walk (snapshot.json).
SNAPSHOT = {
    "net": "0b41483d03126e9730420562",  # 0.032 g, not stable
    "gross": "0b414843a317ae14304203c8",  # 326.185 g
    "tare": "0b414843a3174bc63042485c",  # 326.182 g, stable bit set
    "status": "0b414800008188181000450a",  # state 0x88 (stable), status 0x18
    "software": "0d414a0039210039013901000167",
    "factory": "0841450031801165b5",
    "model": "1741544d534531323033532d3130302d445200000000002b",
    "manufacturer": "134150536172746f726975730000000000000070",
    "sbn": "0441210066",
}


def test_snapshot_replies():
    def body(name: str) -> bytes:
        return xbpi.decode_reply(bytes.fromhex(SNAPSHOT[name])).body

    net, gross, tare = (xbpi.decode_measurement(body(k)) for k in ("net", "gross", "tare"))
    assert (net.value, net.stable) == (0.032, False)
    assert (gross.value, gross.stable) == (326.185, False)
    assert (tare.value, tare.stable) == (326.182, True)
    assert xbpi.decode_status_block(body("status")).stable is True
    assert xbpi.decode_software(body("software")) == "00-39-21"
    assert xbpi.decode_factory_number(body("factory")) == "0031801165"
    assert xbpi.decode_text(body("model")) == "MSE1203S-100-DR"
    assert xbpi.decode_text(body("manufacturer")) == "Sartorius"
    for name, hex_frame in SNAPSHOT.items():
        raw = bytes.fromhex(hex_frame)
        theirs = parse_frame(raw)
        ours = xbpi.decode_reply(raw)
        assert (ours.subtype, ours.body) == (theirs.subtype, theirs.body), name


def test_capa_requests_equal_the_validated_clients():
    script = build_identify_script()
    for opcode in (0x00, 0x01, 0x02, 0x07, 0x71):
        assert xbpi.encode_request(opcode) in script
    assert xbpi.encode_request(0x1E) == canned_frames.TX_READ_NET
    assert xbpi.encode_request(0x14) == canned_frames.TX_TARE
    assert xbpi.encode_request(0x18) == canned_frames.TX_ZERO
    assert xbpi.encode_request(0x30) == canned_frames.TX_READ_STATUS_BLOCK
    assert xbpi.encode_request(0x1E) == bytes.fromhex("04 01 09 1e 2c")  # documented


def test_splitter_reassembles_captured_frames_byte_by_byte():
    stream = b"".join(bytes.fromhex(r["raw"]) for r in _rows()[:5])
    split = XbpiSplitter(replies=True)
    frames = [f for b in stream for f in split.feed(bytes([b]))]
    assert frames == [bytes.fromhex(r["raw"]) for r in _rows()[:5]]
