"""Golden Modbus RTU frames, CRC-16/MODBUS and 32-bit word-order permutations."""

import struct

import pytest

from capa_watlow import modbus
from capa_watlow.crc import modbus_crc


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_crc_reference_vectors():
    assert modbus_crc(h("010300000002")) == h("C40B")  # the canonical example frame
    assert modbus_crc(b"123456789") == h("374B")  # CRC-16/MODBUS check value 0x4B37


def test_read_process_value_request_is_byte_exact():
    # Analog Input Value of loop 1: relative register 360 = 0x0168, two registers.
    frame = modbus.encode_request(modbus.ReadHolding(1, 360, 2))
    assert frame[:-2] == h("01 03 0168 0002")
    assert frame[-2:] == modbus_crc(frame[:-2])
    assert modbus.decode_request(frame) == modbus.ReadHolding(1, 360, 2)


def test_write_setpoint_request_is_byte_exact():
    words = modbus.float_to_registers(392.0, "low_high")  # 0x43C40000 -> low word first
    assert words == [0x0000, 0x43C4]
    frame = modbus.encode_request(modbus.WriteMultiple(1, 2160, tuple(words)))
    assert frame[:-2] == h("01 10 0870 0002 04 0000 43C4")
    assert modbus.decode_request(frame) == modbus.WriteMultiple(1, 2160, (0, 0x43C4))


@pytest.mark.parametrize(
    ("order", "words"),
    [("low_high", [0x0000, 0x43C4]), ("high_low", [0x43C4, 0x0000])],
)
def test_float_word_order(order, words):
    assert modbus.float_to_registers(392.0, order) == words
    assert modbus.registers_to_float(words, order) == 392.0


@pytest.mark.parametrize("value", [0.0, -40.0, 25.5, 2531.8, 1e-3])
@pytest.mark.parametrize("order", ["low_high", "high_low"])
def test_float_round_trip_in_both_orders(value, order):
    expected = struct.unpack(">f", struct.pack(">f", value))[0]
    assert modbus.registers_to_float(modbus.float_to_registers(value, order), order) == expected


def test_wrong_word_order_gives_a_different_value():
    words = modbus.float_to_registers(77.0, "low_high")
    assert modbus.registers_to_float(words, "high_low") != 77.0


@pytest.mark.parametrize(
    ("order", "words"), [("low_high", [0x5678, 0x1234]), ("high_low", [0x1234, 0x5678])]
)
def test_uint32_word_order(order, words):
    assert modbus.uint32_to_registers(0x12345678, order) == words
    assert modbus.registers_to_uint32(words, order) == 0x12345678


def test_responses_round_trip():
    for response in (
        modbus.ReadHoldingReply(2, (0x0000, 0x429A)),
        modbus.WriteMultipleReply(2, 2160, 2),
        modbus.ExceptionReply(2, 0x03, 0x02),
    ):
        assert modbus.decode_response(modbus.encode_response(response)) == response
    assert modbus.encode_response(modbus.ExceptionReply(1, 0x03, 0x02))[:3] == h("01 83 02")


def test_bad_crc_is_rejected():
    frame = bytearray(modbus.encode_request(modbus.ReadHolding(1, 360, 2)))
    frame[-1] ^= 0xFF
    with pytest.raises(modbus.ModbusFrameError, match="CRC"):
        modbus.decode_request(bytes(frame))


def test_request_assembler_cuts_by_function_length():
    read = modbus.encode_request(modbus.ReadHolding(1, 360, 2))
    write = modbus.encode_request(modbus.WriteMultiple(1, 2160, (0, 0x43C4)))
    stream = read + write
    assembler = modbus.RequestAssembler()
    frames = []
    for i in range(0, len(stream), 3):
        frames += assembler.feed(stream[i : i + 3])
    assert frames == [read, write]
