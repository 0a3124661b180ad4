"""Golden xBPI telegrams: framing, typed parameters and checksum cases (no I/O)."""

import math
import struct

import pytest

from capa_sartorius import xbpi


def test_checksum_makes_the_telegram_sum_zero():
    assert xbpi.checksum(b"\x02\x10\x1e") == 0xD0
    assert xbpi.checksum(b"") == 0
    assert xbpi.checksum(b"\xff\x01") == 0x00


def test_read_weight_request_golden():
    frame = xbpi.encode_request(xbpi.CMD_READ_WEIGHT, address=1)
    assert frame == bytes([0x02, 0x10, 0x1E, 0xD0])
    assert sum(frame) % 256 == 0
    assert xbpi.decode_request(frame) == xbpi.Request(address=1, command=0x1E)


def test_request_to_another_address():
    frame = xbpi.encode_request(xbpi.CMD_TARE, address=3)
    assert frame == bytes([0x02, 0x30, 0x14, 0xBA])
    assert xbpi.decode_request(frame).address == 3


def test_weight_reply_golden():
    frame = xbpi.encode_reply(xbpi.CMD_READ_WEIGHT, (50.0, 1, "g"))
    expected = (
        bytes([0x0D, 0x01, 0x00, 0x1E])  # length 13, from balance 1 to host, OK, echo
        + bytes([0x24, 0x42, 0x48, 0x00, 0x00])  # float32 50.0
        + bytes([0x11, 0x01])  # uint8 status: stable
        + bytes([0x30, 0x01, 0x67])  # text "g"
        + bytes([0x7C])  # checksum
    )
    assert frame == expected
    reply = xbpi.decode_reply(frame)
    assert reply.ok
    assert reply.command == xbpi.CMD_READ_WEIGHT
    reading = xbpi.reading_from_reply(reply)
    assert (reading.value, reading.unit, reading.stable) == (50.0, "g", True)


def test_error_reply_golden():
    frame = xbpi.encode_reply(xbpi.CMD_ZERO, (xbpi.ERROR_NOT_POSSIBLE,), ok=False)
    assert frame == bytes([0x05, 0x01, 0x01, 0x15, 0x11, 0x03, 0xD0])
    reply = xbpi.decode_reply(frame)
    assert not reply.ok
    assert reply.error_code == 3
    assert "not possible" in reply.error_text()
    with pytest.raises(xbpi.XbpiError):
        xbpi.reading_from_reply(reply)


@pytest.mark.parametrize("flip", [1, 2, 4, -1])
def test_any_corrupted_byte_fails_the_checksum(flip):
    frame = bytearray(xbpi.encode_reply(xbpi.CMD_READ_WEIGHT, (12.5, 0, "g")))
    frame[flip] ^= 0x01
    with pytest.raises(xbpi.XbpiError, match="checksum"):
        xbpi.decode_reply(bytes(frame))


def test_length_mismatch_and_impossible_length_byte():
    frame = xbpi.encode_request(xbpi.CMD_READ_WEIGHT)
    with pytest.raises(xbpi.XbpiError, match="announces"):
        xbpi.decode_request(frame[:-1])
    with pytest.raises(xbpi.XbpiError):
        xbpi.frame_size(0x00)
    with pytest.raises(xbpi.XbpiError):
        xbpi.frame_size(0xFF)
    assert xbpi.frame_size(0x02) == 4


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (7, bytes([0x11, 0x07])),
        (-2, bytes([0x12, 0xFF, 0xFE])),
        (300, bytes([0x12, 0x01, 0x2C])),
        (70000, bytes([0x14, 0x00, 0x01, 0x11, 0x70])),
        (-1.5, bytes([0x24]) + struct.pack(">f", -1.5)),
        ("AB", bytes([0x30, 0x02, 0x41, 0x42])),
        ("", bytes([0x30, 0x00])),
    ],
)
def test_typed_parameters(value, wire):
    frame = xbpi.encode_request(0x40, (value,))
    assert frame[3:-1] == wire
    assert xbpi.decode_request(frame).params == (value,)


def test_unknown_tag_and_truncated_parameter():
    body = bytes([0x10, 0x40, 0x99, 0x00])
    frame = bytes([len(body)]) + body
    with pytest.raises(xbpi.XbpiError, match="tag"):
        xbpi.decode_request(frame + bytes([xbpi.checksum(frame)]))
    body = bytes([0x10, 0x40, 0x24, 0x00])  # float with 1 of 4 bytes
    frame = bytes([len(body)]) + body
    with pytest.raises(xbpi.XbpiError, match="truncated"):
        xbpi.decode_request(frame + bytes([xbpi.checksum(frame)]))


def test_unknown_reply_kind():
    body = bytes([0x01, 0x07, 0x1E])
    frame = bytes([len(body)]) + body
    with pytest.raises(xbpi.XbpiError, match="reply kind"):
        xbpi.decode_reply(frame + bytes([xbpi.checksum(frame)]))


@pytest.mark.parametrize(
    ("flags", "stable", "overload", "underload"),
    [
        (xbpi.STATUS_STABLE, True, False, False),
        (0, False, False, False),
        (xbpi.STATUS_OVERLOAD, False, True, False),
        (xbpi.STATUS_UNDERLOAD, False, False, True),
        (xbpi.STATUS_STABLE | xbpi.STATUS_ADJUSTING, False, False, False),
    ],
)
def test_weight_status_flags(flags, stable, overload, underload):
    reply = xbpi.decode_reply(xbpi.encode_reply(xbpi.CMD_READ_WEIGHT, (1.25, flags, "g")))
    r = xbpi.reading_from_reply(reply)
    assert (r.stable, r.overload, r.underload) == (stable, overload, underload)
    assert math.isnan(r.value) == (overload or underload)


def test_weight_params_round_trip_and_float32_noise_is_dropped():
    params = xbpi.weight_params(49.9937, "g", stable=True)
    r = xbpi.reading_from_reply(xbpi.decode_reply(xbpi.encode_reply(xbpi.CMD_READ_WEIGHT, params)))
    assert r.value == 49.9937  # exact after trimming to float32's 7 significant digits
