"""Regressions for issue 13: capa against bytes captured from a real EZ-Zone PM3.

Every byte string here is a fact published with watlowlib 0.8.1 (its PM3 captures in
``tests/test_codec.py`` and ``tests/fixtures/pm3_*.jsonl``); capa's own code and
simulator must agree with them. Each test failed against the code before the fix.
"""

from __future__ import annotations

import os
import struct

import pytest
import serial

from capa_watlow import modbus, stdbus
from capa_watlow.client import decode_words, modbus_refusal, refusal
from capa_watlow.crc import modbus_crc
from capa_watlow.errors import (
    CommError,
    DeviceRefused,
    IllegalFunction,
    NoSuchAttribute,
    NoSuchInstance,
    NoSuchObject,
    ParameterUnsupported,
    PortLost,
)
from capa_watlow.params import ParamKind, by_id, by_name
from capa_watlow.sim import ControllerModel, SimBus
from capa_watlow.sim.bus import Reply
from capa_watlow.transport import SharedPort


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Captured PM3 reply payloads (read replies: 02 03 01 class member instance <value>).
CAPTURED_VALUES = [
    ("02 03 01 01 01 01 06 00 00 00 1C", 1001, 28, ParamKind.S32),  # Hardware ID: ARM
    ("02 03 01 03 02 01 01 02", 3002, 2, ParamKind.U8),
    ("02 03 01 03 0A 01 03 00 05", 3010, 5, ParamKind.U16),
    ("02 03 01 10 06 01 05 FB 9D 48 F7", 16006, 0xFB9D48F7, ParamKind.U32),
    ("02 03 01 08 03 01 0F 01 00 47", 8003, 71, ParamKind.ENUM),
    ("02 03 01 01 09 01 09 10 50 4D 33 52 31 43 41 2D 41 41 41 41 41 41 41 00",
     1009, "PM3R1CA-AAAAAAA", ParamKind.STRING),
    ("02 03 01 01 0B 01 09 0B 45 5A 2D 5A 4F 4E 45 20 50 4D 00", 1011, "EZ-ZONE PM",
     ParamKind.STRING),
]  # fmt: skip

# Whole captured frames (watlowlib's pm3_stdbus_pv_setpoint.jsonl), request -> reply.
READ_HW_ID = (
    h("55FF0510000006E80103010101015EA0"),
    h("55FF060010000B88020301010101060000001C5666"),
)
READ_PART = (
    h("55FF0510000006E80103010109019E6E"),
    h("55FF0600100018780203010109010910504D33523143412D41414141414141000AB4"),
)


@pytest.mark.parametrize(("payload", "param_id", "value", "kind"), CAPTURED_VALUES)
def test_every_captured_value_type_decodes(payload, param_id, value, kind):
    reply = stdbus.decode_payload(h(payload))
    assert reply == stdbus.Reply(0x03, param_id, 1, value, kind)


@pytest.mark.parametrize(("payload", "param_id", "value", "kind"), CAPTURED_VALUES)
def test_every_value_type_encodes_back_to_the_captured_bytes(payload, param_id, value, kind):
    assert stdbus.encode_payload(stdbus.Reply(0x03, param_id, 1, value, kind)) == h(payload)


@pytest.mark.parametrize(
    ("kind", "value"),
    [(ParamKind.U8, 200), (ParamKind.U16, 65535), (ParamKind.U32, 4_000_000_000),
     (ParamKind.S32, -5), (ParamKind.FLOAT, -12.5), (ParamKind.ENUM, 1331),
     (ParamKind.STRING, "oven 3")],
)  # fmt: skip
def test_write_requests_of_every_type_round_trip(kind, value):
    message = stdbus.WriteRequest(1011, 1, value, kind)
    assert stdbus.decode_request(stdbus.encode_payload(message)) == message


def test_out_of_range_values_are_refused_before_the_wire():
    for kind, value in ((ParamKind.U8, 256), (ParamKind.S32, 2**31), (ParamKind.U16, -1)):
        with pytest.raises(ValueError, match="fit"):
            stdbus.encode_value(value, kind)


def test_unknown_type_tag_is_a_frame_error_naming_it():
    with pytest.raises(stdbus.FrameError, match="0x07"):
        stdbus.decode_value(h("07 00 00"))


@pytest.mark.parametrize(
    ("payload", "cls", "unsupported"),
    [("02 81", NoSuchObject, True), ("02 83", NoSuchAttribute, True),
     ("02 84", NoSuchInstance, False)],
)  # fmt: skip
def test_captured_error_replies_are_distinct_refusals(payload, cls, unsupported):
    reply = stdbus.decode_payload(h(payload))
    assert isinstance(reply, stdbus.ErrorReply)
    error = refusal(reply.code, "address 1 parameter 1009")
    assert type(error) is cls
    assert isinstance(error, DeviceRefused)
    assert not isinstance(error, CommError)  # a refusal is no communication failure
    assert isinstance(error, ParameterUnsupported) is unsupported
    assert f"0x{reply.code:02X}" in str(error)


def test_modbus_exceptions_map_to_refusals():
    assert isinstance(modbus_refusal(0x01, "unit 1"), IllegalFunction)
    assert isinstance(modbus_refusal(0x02, "unit 1"), ParameterUnsupported)
    assert type(modbus_refusal(0x03, "unit 1")).__name__ == "ModbusExceptionReply"


def _sim_reply(bus: SimBus, request: bytes) -> bytes:
    [out] = bus.feed(request)
    assert isinstance(out, Reply)
    return out.data


@pytest.mark.parametrize(("request_frame", "reply_frame"), [READ_HW_ID, READ_PART])
def test_simulator_answers_identity_byte_for_byte_as_the_captured_pm3(request_frame, reply_frame):
    bus = SimBus([ControllerModel(1)])
    assert _sim_reply(bus, request_frame) == reply_frame


@pytest.mark.parametrize("param_id", [1009, 1032, 8002, 17003, 17050, 17043])
def test_simulator_answers_the_parameters_a_real_pm_answers(param_id):
    bus = SimBus([ControllerModel(1)])
    raw = _sim_reply(bus, stdbus.build_request(1, stdbus.ReadRequest(param_id, 1)))
    [frame] = stdbus.FrameAssembler().feed(raw)
    reply = stdbus.decode_payload(frame.data)
    assert isinstance(reply, stdbus.Reply), reply
    assert reply.kind is by_id(param_id).kind


@pytest.mark.parametrize(
    ("param_id", "instance", "code"),
    [(99001, 1, 0x81), (1099, 1, 0x83), (4001, 3, 0x84), (1001, 2, 0x84)],
)
def test_simulator_refuses_with_the_pm3_codes(param_id, instance, code):
    bus = SimBus([ControllerModel(1)])
    raw = _sim_reply(bus, stdbus.build_request(1, stdbus.ReadRequest(param_id, instance)))
    [frame] = stdbus.FrameAssembler().feed(raw)
    assert frame.data == bytes((0x02, code))


# ---------------------------------------------------------------- Modbus
# watlowlib's pm3_modbus_pv_setpoint.jsonl: a PM3 set to High_Low word order.
PV_WORDS_HIGH_LOW = (17348, 0)  # register 360: 392.0 (0x43C40000)
HW_ID_WORDS_HIGH_LOW = (0, 28)  # register 0: 28


def test_captured_high_low_words_decode_only_in_high_low():
    assert decode_words(PV_WORDS_HIGH_LOW, ParamKind.FLOAT, "high_low") == 392.0
    assert decode_words(HW_ID_WORDS_HIGH_LOW, ParamKind.S32, "high_low") == 28
    # read as low_high the PV is a denormal near 2.4e-41: what word-order checking prevents
    wrong = decode_words(PV_WORDS_HIGH_LOW, ParamKind.FLOAT, "low_high")
    assert 0 < wrong < 1e-40
    assert decode_words(HW_ID_WORDS_HIGH_LOW, ParamKind.S32, "low_high") == 28 << 16


@pytest.mark.parametrize("order", ["low_high", "high_low"])
def test_simulator_word_order_setting_and_known_value(order):
    bus = SimBus([ControllerModel(1)], word_order=order)
    raw = _sim_reply(bus, modbus.encode_request(modbus.ReadHolding(1, 2488, 1)))
    assert modbus.decode_response(raw).values == ((1331,) if order == "low_high" else (1330,))
    raw = _sim_reply(bus, modbus.encode_request(modbus.ReadHolding(1, 0, 2)))
    expected = HW_ID_WORDS_HIGH_LOW if order == "high_low" else (28, 0)
    assert modbus.decode_response(raw).values == expected


def test_loop_two_is_where_the_pm_map_puts_it():
    bus = SimBus([ControllerModel(1, setpoint_c=25.0)], wire_unit="degC", word_order="high_low")
    for register, value in ((440, 25.0), (2240, 25.0)):
        raw = _sim_reply(bus, modbus.encode_request(modbus.ReadHolding(1, register, 2)))
        assert (
            decode_words(modbus.decode_response(raw).values, ParamKind.FLOAT, "high_low") == value
        )
    assert by_name("output_power").register_for(2) == 1974
    # the old strides' registers are nothing on a PM
    raw = _sim_reply(bus, modbus.encode_request(modbus.ReadHolding(1, 450, 2)))
    assert modbus.decode_response(raw) == modbus.ExceptionReply(1, 0x03, 0x02)


@pytest.mark.parametrize(
    "request_body",
    ["01 04 01 68 00 02", "01 06 08 70 00 01", "01 2B 0E 01 00"],  # 04, 06, 2B
)
def test_simulator_answers_unimplemented_functions_with_illegal_function(request_body):
    body = h(request_body)
    frame = body + modbus_crc(body)
    raw = _sim_reply(SimBus([ControllerModel(1)]), frame)
    function = body[1]
    assert raw == bytes((1, function | 0x80, 0x01)) + modbus_crc(bytes((1, function | 0x80, 0x01)))


def test_modbus_reply_reassembly_tells_a_bad_crc_from_silence():
    good = modbus.encode_response(modbus.ReadHoldingReply(1, (17348, 0)))
    assembler = modbus.ResponseAssembler(1, 0x03)
    assert assembler.feed(good[:3]) is None
    assert assembler.needed() == len(good) - 3
    frame = assembler.feed(good[3:])
    assert frame == good
    bad = good[:-1] + bytes((good[-1] ^ 0x01,))
    with pytest.raises(modbus.ModbusChecksumError):
        modbus.decode_response(bad)
    with pytest.raises(modbus.ModbusFrameError, match="unit 2"):
        modbus.ResponseAssembler(1, 0x03).feed(struct.pack(">BB", 2, 3))


# ---------------------------------------------------------------- port killed while idle
def test_port_killed_while_idle_is_port_lost_not_a_crash():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = SharedPort("serial:test", lambda: path, "stdbus", 38400, timeout_s=0.1)
    try:
        port.ensure_open()
        os.close(master)  # the device goes away between two polls
        os.close(slave)
        # The root cause: pyserial's flush raises termios.error, not OSError.
        with pytest.raises(Exception) as raw:  # noqa: PT011 - naming the exact type below
            port._serial.reset_input_buffer()
        assert not isinstance(raw.value, OSError | serial.SerialException)
        with pytest.raises(PortLost, match="port lost"):
            port.stdbus_exchange(
                stdbus.build_request(1, stdbus.ReadRequest(4001, 1)), 0.1, lambda f: True
            )
        assert port._serial is None  # dropped: the next exchange re-opens
    finally:
        port.close()


def test_modbus_requests_keep_the_rtu_inter_frame_silence():
    # A real slave ends a frame by 3.5 characters of silence; capa's own Modbus client
    # (replacing pymodbus) must not start a request sooner after the previous reply.
    import select
    import threading
    import time
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    reply = modbus.encode_response(modbus.ReadHoldingReply(1, (1331,)))
    marks: list[tuple[str, float]] = []

    def fake_slave() -> None:
        for _ in range(3):
            ready, _, _ = select.select([master], [], [], 5)
            if not ready:
                return
            os.read(master, 64)
            marks.append(("request", time.monotonic()))
            os.write(master, reply)
            marks.append(("reply", time.monotonic()))

    thread = threading.Thread(target=fake_slave)
    thread.start()
    port = SharedPort("serial:gap", lambda: path, "modbus_rtu", 9600, timeout_s=0.5)
    try:
        request = modbus.encode_request(modbus.ReadHolding(1, 2488, 1))
        for _ in range(3):
            assert port.modbus_exchange(request, 1.0) == modbus.ReadHoldingReply(1, (1331,))
    finally:
        port.close()
        thread.join()
        os.close(master)
        os.close(slave)
    assert port.frame_gap_s == pytest.approx(3.5 * 11 / 9600)
    replies = [t for kind, t in marks if kind == "reply"]
    requests = [t for kind, t in marks if kind == "request"]
    for sent, following in zip(replies, requests[1:], strict=False):
        assert following - sent >= port.frame_gap_s
