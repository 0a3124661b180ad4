"""xBPI codec against fact bytes captured from real balances (no I/O).

The frames are those published with the hardware-validated client sartoriuslib (captured
on an MSE1203S-100-DR Cubis); the oracle session (``nox -s oracles``) checks the same
against the library itself. These tests fail on the invented framing capa had before:
length without the checksum, an address nibble byte, a two's-complement checksum.
"""

import math

import pytest

from capa_sartorius import xbpi
from capa_sartorius.framing import XbpiSplitter

# Host -> balance requests (documented examples): length, src 01, dst 09, opcode, sum.
READ_NET = bytes.fromhex("04 01 09 1e 2c")
READ_SBN = bytes.fromhex("04 01 09 71 7f")
TARE = bytes.fromhex("04 01 09 14 22")
READ_PARAM_0 = bytes.fromhex("06 01 09 55 21 00 86")
# Balance -> host replies captured on an MSE1203S.
NET_EMPTY_PAN = bytes.fromhex("0b 41 48 bb a3 d7 0a 3d 30 82 45 07")  # -0.005 g stable
NET_200G_UNSTABLE = bytes.fromhex("0b41484347f33333304205ee")  # 199.950 g
NET_200G_STABLE = bytes.fromhex("0b41484347f3f7ce3042458d")  # 199.953 g
ACK = bytes.fromhex("03 41 00 44")
SBN_00 = bytes.fromhex("04 41 21 00 66")
STATUS_STABLE = bytes.fromhex("0b414800008188181000450a")
SOFTWARE = bytes.fromhex("0d414a0039210039013901000167")
FACTORY_NUMBER = bytes.fromhex("0841450031801165b5")
MODEL = bytes.fromhex("1741544d534531323033532d3130302d445200000000002b")


def test_checksum_is_the_plain_sum():
    assert xbpi.checksum(bytes.fromhex("04 01 09 1e")) == 0x2C
    assert xbpi.checksum(b"\xff\x02") == 0x01


@pytest.mark.parametrize(
    ("opcode", "args", "frame"),
    [
        (0x1E, b"", READ_NET),
        (0x71, b"", READ_SBN),
        (0x14, b"", TARE),
        (0x55, b"\x21\x00", READ_PARAM_0),
    ],
)
def test_requests_are_byte_exact(opcode, args, frame):
    assert xbpi.encode_request(opcode, args) == frame
    assert xbpi.decode_request(frame) == xbpi.Request(src=1, dst=9, opcode=opcode, args=args)


def test_length_byte_counts_everything_after_it_including_the_checksum():
    assert xbpi.frame_size(READ_NET[0]) == len(READ_NET)
    assert xbpi.frame_size(NET_EMPTY_PAN[0]) == len(NET_EMPTY_PAN)


def test_captured_empty_pan_reading():
    reply = xbpi.decode_reply(NET_EMPTY_PAN)
    assert reply.subtype == xbpi.SUB_MEASUREMENT
    m = xbpi.decode_measurement(reply.body)
    assert (m.value, m.unit, m.decimals, m.stable, m.off_scale) == (-0.005, "g", 3, True, False)


@pytest.mark.parametrize(
    ("frame", "value", "stable"),
    [(NET_200G_UNSTABLE, 199.95, False), (NET_200G_STABLE, 199.953, True)],
)
def test_captured_200_g_readings(frame, value, stable):
    m = xbpi.decode_measurement(xbpi.decode_reply(frame).body)
    assert (m.value, m.stable) == (value, stable)


def test_captured_ack_sbn_and_status():
    assert xbpi.decode_reply(ACK) == xbpi.Reply(subtype=xbpi.SUB_ACK, body=b"", raw=ACK)
    assert xbpi.decode_reply(SBN_00).body == b"\x00"
    block = xbpi.decode_status_block(xbpi.decode_reply(STATUS_STABLE).body)
    assert (block.state, block.stable, block.overload, block.underload) == (
        0x88,
        True,
        False,
        False,
    )


def test_captured_identity():
    assert xbpi.decode_text(xbpi.decode_reply(MODEL).body) == "MSE1203S-100-DR"
    assert xbpi.decode_factory_number(xbpi.decode_reply(FACTORY_NUMBER).body) == "0031801165"
    assert xbpi.decode_software(xbpi.decode_reply(SOFTWARE).body) == "00-39-21"


def test_error_reply():
    frame = bytes([0x04, 0x41, 0x01, 0x04]) + bytes([xbpi.checksum(b"\x04\x41\x01\x04")])
    reply = xbpi.decode_reply(frame)
    assert reply.is_error
    assert reply.error_code == 0x04
    assert reply.error_text() == "xBPI error 0x04 (unknown opcode)"


def test_bad_checksum_and_garbage_are_told_apart():
    bad = NET_EMPTY_PAN[:-1] + bytes([NET_EMPTY_PAN[-1] ^ 0x01])
    with pytest.raises(xbpi.XbpiError) as caught:
        xbpi.decode_reply(bad)
    assert caught.value.kind == "bad_checksum"
    with pytest.raises(xbpi.XbpiError) as caught:
        xbpi.decode_reply(bytes([0x03, 0x42, 0x00, 0x45]))  # wrong marker
    assert caught.value.kind == "garbage"
    with pytest.raises(xbpi.XbpiError) as caught:
        xbpi.decode_reply(NET_EMPTY_PAN[:-2])
    assert caught.value.kind == "garbage"


def test_encoded_measurement_matches_the_captured_layout():
    body = xbpi.encode_measurement(-0.005, "g", decimals=3, stable=True)
    captured = xbpi.decode_reply(NET_EMPTY_PAN).body
    assert body[:4] == captured[:4]  # float32 big endian
    assert body[5:7] == captured[5:7]  # decimals nibble, sign bits + unit g
    assert body[7] & 0x40  # stable flag


def test_off_scale_needs_the_status_block():
    body = xbpi.encode_measurement(None, "g", decimals=3, stable=False)
    assert body[:5] == xbpi.OFF_SCALE
    m = xbpi.decode_measurement(body)
    assert m.off_scale
    assert m.value is None
    over = xbpi.decode_status_block(xbpi.encode_status_block(stable=False, overload=True))
    under = xbpi.decode_status_block(xbpi.encode_status_block(stable=False, underload=True))
    r_over = xbpi.reading_from_measurement(m, over)
    r_under = xbpi.reading_from_measurement(m, under)
    r_busy = xbpi.reading_from_measurement(
        m, xbpi.decode_status_block(xbpi.decode_reply(STATUS_STABLE).body)
    )
    assert (r_over.overload, r_over.underload, r_over.busy) == (True, False, False)
    assert (r_under.overload, r_under.underload, r_under.busy) == (False, True, False)
    assert (r_busy.overload, r_busy.underload, r_busy.busy) == (False, False, True)
    assert math.isnan(r_over.value)


def test_units_and_signs():
    for unit in ("g", "kg", "mg"):
        m = xbpi.decode_measurement(xbpi.encode_measurement(1.5, unit, decimals=2, stable=False))
        assert (m.value, m.unit, m.stable) == (1.5, unit, False)
    zero = xbpi.encode_measurement(0.0, "g", decimals=4, stable=True)
    assert zero[6] & 0xC0 == 0x00  # sign bits: exactly zero
    assert xbpi.encode_measurement(2.0, "g", decimals=4, stable=True)[6] & 0xC0 == 0x40
    with pytest.raises(ValueError, match="no unit code"):
        xbpi.encode_measurement(1.0, "ct", decimals=2, stable=True)


def test_splitter_resynchronises_on_replies():
    split = XbpiSplitter(replies=True)
    frames = split.feed(b"\x00\x01\x02" + b"\x07\x99" + NET_EMPTY_PAN + ACK)
    assert frames == [NET_EMPTY_PAN, ACK]
    assert split.dropped == 5
