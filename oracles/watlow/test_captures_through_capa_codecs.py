"""Frames captured from a real PM3 (published by watlowlib) through capa's codecs.

Each captured byte string is decoded by capa and by watlowlib's codec (validated on the
PM3); the two must agree with each other and with the value watlowlib's tests state.
capa's encoders must also reproduce the captured bytes exactly, and agree with
watlowlib's / anymodbus' encoders on values of every type in both word orders.
"""

from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path

import pytest
from anymodbus import RegisterType, WordOrder
from anymodbus import decode as am_decode
from anymodbus import encode as am_encode
from watlowlib import errors as wl_errors
from watlowlib.protocol.stdbus import framing as wl_framing
from watlowlib.protocol.stdbus import payload as wl_payload
from watlowlib.protocol.stdbus import tlv as wl_tlv

from capa_watlow import stdbus
from capa_watlow.client import decode_words, encode_words, refusal
from capa_watlow.errors import NoSuchAttribute, NoSuchInstance, NoSuchObject
from capa_watlow.params import ParamKind


def _load_captures():  # the oracle tests are no package (pytest's importlib mode)
    spec = importlib.util.spec_from_file_location(
        "watlow_captures", Path(__file__).with_name("captures.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_captures = _load_captures()
STDBUS_ROUNDS = _captures.STDBUS_ROUNDS
STDBUS_PAYLOADS = _captures.STDBUS_PAYLOADS
STDBUS_ERRORS = _captures.STDBUS_ERRORS
MODBUS_ROUNDS = _captures.MODBUS_ROUNDS

WL_TAG = {
    ParamKind.U8: wl_tlv.DataType.U8, ParamKind.U16: wl_tlv.DataType.U16,
    ParamKind.U32: wl_tlv.DataType.U32, ParamKind.S32: wl_tlv.DataType.S32,
    ParamKind.FLOAT: wl_tlv.DataType.FLOAT, ParamKind.STRING: wl_tlv.DataType.STRING,
    ParamKind.ENUM: wl_tlv.DataType.PACKED,
}  # fmt: skip
ORDERS = {"high_low": WordOrder.HIGH_LOW, "low_high": WordOrder.LOW_HIGH}


def _one_frame(raw: bytes) -> stdbus.Frame:
    [item] = stdbus.FrameAssembler().feed(raw)
    assert isinstance(item, stdbus.Frame), item  # capa accepts both checks of the capture
    return item


@pytest.mark.parametrize(("label", "request_hex", "reply_hex"), STDBUS_ROUNDS)
def test_captured_rounds_decode_alike_and_re_encode_byte_exact(label, request_hex, reply_hex):
    request, reply = bytes.fromhex(request_hex), bytes.fromhex(reply_hex)
    # request: capa's parse, watlowlib's parse, and capa's own encoding of it
    frame = _one_frame(request)
    message = stdbus.decode_request(frame.data)
    wl_request = wl_payload.decode_payload(wl_framing.decode_frame(request).payload)
    assert (message.param_id, message.instance) == (
        wl_request.cls * 1000 + wl_request.member, wl_request.instance,
    )  # fmt: skip
    assert stdbus.build_request(1, message) == request
    # reply: the value both decoders read, and capa's encoding of that reply
    answer = stdbus.decode_payload(_one_frame(reply).data)
    wl_answer = wl_payload.decode_payload(wl_framing.decode_frame(reply).payload)
    assert isinstance(answer, stdbus.Reply), (label, answer)
    assert answer.value == wl_answer.value
    assert stdbus.TAGS[answer.kind] == wl_answer.type_tag
    assert stdbus.build_reply(1, answer) == reply


@pytest.mark.parametrize(("label", "payload_hex", "param_id", "value"), STDBUS_PAYLOADS)
def test_captured_payloads_of_every_type(label, payload_hex, param_id, value):
    raw = bytes.fromhex(payload_hex)
    answer = stdbus.decode_payload(raw)
    wl_answer = wl_payload.decode_payload(raw)
    assert isinstance(answer, stdbus.Reply), label
    assert (answer.param_id, answer.instance) == (param_id, 1)
    assert answer.value == value == wl_answer.value
    assert stdbus.TAGS[answer.kind] == wl_answer.type_tag
    assert stdbus.encode_payload(answer) == raw


@pytest.mark.parametrize(("payload_hex", "code"), STDBUS_ERRORS)
def test_captured_error_replies_map_to_matching_classes(payload_hex, code):
    answer = stdbus.decode_payload(bytes.fromhex(payload_hex))
    assert answer == stdbus.ErrorReply(code)
    ours = refusal(code, "oracle")
    with pytest.raises(wl_errors.WatlowError) as theirs:
        wl_payload.raise_for_error_code(code)
    pairs = {
        NoSuchObject: wl_errors.WatlowNoSuchObjectError,
        NoSuchAttribute: wl_errors.WatlowNoSuchAttributeError,
        NoSuchInstance: wl_errors.WatlowNoSuchInstanceError,
    }
    assert type(theirs.value) is pairs[type(ours)]


def _values(kind: ParamKind, rng: random.Random) -> list[object]:
    if kind is ParamKind.STRING:
        return ["", "EZ-ZONE PM", "oven 3", "x" * 40]
    if kind is ParamKind.FLOAT:
        return [0.0, -12.5, 392.0, 2531.7783203125, 1e-30, -1999.0, 9999.0] + [
            struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0] for _ in range(20)
        ]
    low, high = {
        ParamKind.U8: (0, 0xFF), ParamKind.U16: (0, 0xFFFF), ParamKind.ENUM: (0, 0xFFFF),
        ParamKind.U32: (0, 2**32 - 1), ParamKind.S32: (-(2**31), 2**31 - 1),
    }[kind]  # fmt: skip
    return [low, high, *(rng.randint(low, high) for _ in range(20))]


@pytest.mark.parametrize("kind", list(ParamKind))
def test_value_encodings_agree_with_watlowlib(kind):
    rng = random.Random(13)
    for value in _values(kind, rng):
        ours = stdbus.encode_value(value, kind)  # a request's value: as watlowlib writes it
        assert ours == wl_tlv.encode_value(WL_TAG[kind], value), (kind, value)
        decoded, _, used = wl_tlv.decode_value(ours)
        assert used == len(ours)
        assert stdbus.decode_value(ours) == (decoded, kind)


@pytest.mark.parametrize(("label", "register", "words", "value"), MODBUS_ROUNDS)
def test_captured_modbus_words_decode_in_high_low(label, register, words, value):
    kind = ParamKind.S32 if isinstance(value, int) else ParamKind.FLOAT
    assert decode_words(words, kind, "high_low") == value
    kind_am = RegisterType.INT32 if kind is ParamKind.S32 else RegisterType.FLOAT32
    assert am_decode(words, type=kind_am, word_order=WordOrder.HIGH_LOW) == value
    assert tuple(encode_words(value, kind, "high_low")) == words  # what a write must send


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize(
    ("kind", "register_type"),
    [(ParamKind.FLOAT, RegisterType.FLOAT32), (ParamKind.S32, RegisterType.INT32),
     (ParamKind.U32, RegisterType.UINT32), (ParamKind.U16, RegisterType.UINT16),
     (ParamKind.ENUM, RegisterType.UINT16)],
)  # fmt: skip
def test_register_encodings_agree_with_anymodbus(order, kind, register_type):
    rng = random.Random(7)
    for value in _values(kind, rng):
        ours = tuple(encode_words(value, kind, order))  # type: ignore[arg-type]
        theirs = am_encode(value, type=register_type, word_order=ORDERS[order])
        assert ours == tuple(theirs), (kind, order, value)
        back = decode_words(ours, kind, order)  # type: ignore[arg-type]
        if kind is ParamKind.FLOAT:  # exact to float32 precision
            assert back == struct.unpack(">f", struct.pack(">f", value))[0]
        else:
            assert back == value
        assert back == am_decode(theirs, type=register_type, word_order=ORDERS[order])
