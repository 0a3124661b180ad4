"""Golden frames for Standard Bus: bytes captured from EZ-Zone PM controllers (published
bus traces), the BACnet MS/TP checks, and reassembly from arbitrary read chunks."""

import pytest

from capa_watlow import stdbus
from capa_watlow.crc import bacnet_data_crc, bacnet_header_crc
from capa_watlow.params import ParamKind


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Captured traffic (address 1 = MS/TP 0x10, address 2 = 0x11).
READ_PV_REQ_1 = h("55FF 0510 0000 06E8 0103 0104 0101 E399")
READ_PV_REQ_2 = h("55FF 0511 0000 0661 0103 0104 0101 E399")
READ_PV_REPLY_1 = h("55FF 0600 1000 0B88 0203 0104 0101 0845 1E3C D4A7 28")
WRITE_SP_REQ_1 = h("55FF 0510 0000 0AEC 0104 0701 0108 43C4 0000 EB77")
WRITE_SP_REPLY_1 = h("55FF 0600 1000 0A76 0204 0701 0108 43C4 0000 8203")
READ_INT_REPLY_1 = h("55FF 0600 1000 0A76 0203 0108 0301 0F01 0047 C56B")
ERROR_REPLY_2 = h("55FF 0600 1100 0217 0280 FFB8")


@pytest.mark.parametrize(
    ("header", "crc"),
    [("0510000006", 0xE8), ("0511000006", 0x61), ("060010000B", 0x88), ("051000000A", 0xEC),
     ("0600110002", 0x17), ("0510030009", 0x46)],
)  # fmt: skip
def test_header_crc_matches_captured_frames(header, crc):
    assert bacnet_header_crc(h(header)) == crc


@pytest.mark.parametrize(
    ("data", "crc"),
    [("010301040101", "E399"), ("0280", "FFB8"), ("010407010108 43C40000", "EB77"),
     ("020301080301 0F010047", "C56B"), ("02030104010108 451E3CD4", "A728")],
)  # fmt: skip
def test_data_crc_matches_captured_frames(data, crc):
    assert bacnet_data_crc(h(data)) == h(crc)


def test_read_requests_are_byte_exact():
    assert stdbus.build_request(1, stdbus.ReadRequest(4001, 1)) == READ_PV_REQ_1
    assert stdbus.build_request(2, stdbus.ReadRequest(4001, 1)) == READ_PV_REQ_2


def test_write_request_is_byte_exact():
    # 392.0 °F is 200 °C, the set point the trace wrote.
    assert stdbus.build_request(1, stdbus.WriteRequest(7001, 1, 392.0)) == WRITE_SP_REQ_1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (READ_PV_REPLY_1, stdbus.Reply(0x03, 4001, 1, pytest.approx(2531.8), ParamKind.FLOAT)),
        (WRITE_SP_REPLY_1, stdbus.Reply(0x04, 7001, 1, 392.0, ParamKind.FLOAT)),
        (READ_INT_REPLY_1, stdbus.Reply(0x03, 8003, 1, 71, ParamKind.ENUM)),
        (ERROR_REPLY_2, stdbus.ErrorReply(0x80)),
    ],
)  # fmt: skip
def test_captured_replies_decode(raw, expected):
    [frame] = stdbus.FrameAssembler().feed(raw)
    assert isinstance(frame, stdbus.Frame)
    assert frame.frame_type == stdbus.REPLY
    assert frame.destination == stdbus.HOST_ADDRESS
    assert stdbus.decode_payload(frame.data) == expected


def test_replies_encode_back_to_the_captured_bytes():
    assert (
        stdbus.build_reply(1, stdbus.Reply(0x04, 7001, 1, 392.0, ParamKind.FLOAT))
        == WRITE_SP_REPLY_1
    )
    assert (
        stdbus.build_reply(1, stdbus.Reply(0x03, 8003, 1, 71, ParamKind.ENUM)) == READ_INT_REPLY_1
    )
    assert stdbus.build_reply(2, stdbus.ErrorReply(0x80)) == ERROR_REPLY_2


def test_request_payloads_round_trip():
    for message in (stdbus.ReadRequest(7001, 2), stdbus.WriteRequest(7001, 2, -12.5),
                    stdbus.WriteRequest(8003, 1, 1234, ParamKind.ENUM)):  # fmt: skip
        [frame] = stdbus.FrameAssembler().feed(stdbus.build_request(3, message))
        assert frame.destination == stdbus.device_mac(3) == 0x12
        assert stdbus.decode_request(frame.data) == message


def test_error_reply_reasons_name_the_pm3_codes_and_number_the_rest():
    assert "no such object" in stdbus.ErrorReply(0x81).reason
    assert "no such attribute" in stdbus.ErrorReply(0x83).reason
    assert "no such instance" in stdbus.ErrorReply(0x84).reason
    assert "0x80" in stdbus.ErrorReply(0x80).reason.lower()  # meaning not established
    assert "0x99" in stdbus.ErrorReply(0x99).reason.lower()


def test_frames_reassemble_from_single_bytes_and_glued_chunks():
    stream = READ_PV_REPLY_1 + WRITE_SP_REPLY_1
    assembler = stdbus.FrameAssembler()
    frames = []
    for i in range(len(stream)):
        frames += assembler.feed(stream[i : i + 1])
    assert [stdbus.decode_payload(f.data).param_id for f in frames] == [4001, 7001]
    # needed() asks for exactly what the header says is missing
    assembler = stdbus.FrameAssembler()
    assert assembler.needed() == 8
    assert assembler.feed(READ_PV_REPLY_1[:8]) == []
    assert assembler.needed() == len(READ_PV_REPLY_1) - 8


def test_garbage_before_a_frame_is_skipped():
    [frame] = stdbus.FrameAssembler().feed(b"\x00\x55\x13\xff" + READ_PV_REPLY_1)
    assert isinstance(frame, stdbus.Frame)


def test_bad_data_crc_is_reported_not_decoded():
    bad = READ_PV_REPLY_1[:-1] + bytes([READ_PV_REPLY_1[-1] ^ 1])
    [item] = stdbus.FrameAssembler().feed(bad)
    assert isinstance(item, stdbus.FrameChecksumError)
    assert "data check" in str(item)


def test_bad_header_crc_resynchronises_on_the_next_frame():
    bad = READ_PV_REPLY_1[:7] + b"\x00" + READ_PV_REPLY_1[8:]
    items = stdbus.FrameAssembler().feed(bad + WRITE_SP_REPLY_1)
    assert isinstance(items[0], stdbus.FrameError)
    assert isinstance(items[-1], stdbus.Frame)
    assert stdbus.decode_payload(items[-1].data).param_id == 7001


def test_addresses_outside_1_to_16_are_rejected():
    with pytest.raises(ValueError, match="1-16"):
        stdbus.device_mac(17)
    assert stdbus.mac_to_address(0x10) == 1
    assert stdbus.mac_to_address(0x00) is None
