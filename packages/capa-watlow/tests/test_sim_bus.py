"""The simulator without a terminal: plant physics, both protocols, faults."""

import math

import pytest

from capa_watlow import modbus, stdbus
from capa_watlow.params import ParamKind
from capa_watlow.sim import ControllerModel, SimBus
from capa_watlow.sim.bus import Disconnect, Reply
from capa_watlow.sim.faults import FaultKind
from capa_watlow.sim.model import Refusal
from capa_watlow.sim.url import SimConfig, parse_sim_url


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_pv_follows_setpoint_with_the_time_constant():
    clock = FakeClock()
    model = ControllerModel(1, ambient_c=25.0, tau_s=10.0, clock=clock, setpoint_c=25.0)
    model.set_setpoint(125.0)
    clock.t = 10.0  # one time constant: 63.2 % of the step
    assert model.process_value() == pytest.approx(25.0 + 100.0 * (1 - math.exp(-1)))
    assert model.output_power() > 0
    clock.t = 200.0
    assert model.process_value() == pytest.approx(125.0, abs=1e-6)
    assert model.process_value(2) == 25.0  # the other loop is untouched


def test_factory_defaults():
    model = ControllerModel(1, ambient_c=25.0)
    assert model.setpoint() == pytest.approx((75.0 - 32.0) / 1.8)  # 75 °F
    assert model.read(1001, 1)[0] == 28
    assert model.read(1009, 1)[0] == "PM3R1CA-AAAAAAA"
    assert model.read(1011, 1)[0] == "EZ-ZONE PM"
    assert model.read(17043, 1)[0] == 1331  # Modbus Word Order: Low_High
    assert model.read(17050, 1)[0] == 30  # Display Units: °F
    assert model.read(8002, 1)[0] == 10  # Control Mode Active: Auto


def test_refusals():
    model = ControllerModel(1, instances=1)
    with pytest.raises(Refusal, match="out of range"):
        model.set_setpoint(6000.0)
    with pytest.raises(Refusal, match="read-only"):
        model.write(4001, 1, 10.0)
    with pytest.raises(Refusal, match="instance"):
        model.read(7001, 2)
    with pytest.raises(Refusal, match="object"):
        model.read(99001, 1)  # class 99: no such object
    with pytest.raises(Refusal, match="attribute"):
        model.read(1099, 1)  # class 1 exists, member 99 does not


def one_reply(bus: SimBus, request: bytes) -> bytes:
    [out] = bus.feed(request)
    assert isinstance(out, Reply)
    return out.data


def test_stdbus_read_in_wire_unit():
    bus = SimBus([ControllerModel(1, ambient_c=25.0, setpoint_c=25.0)], wire_unit="degF")
    raw = one_reply(bus, stdbus.build_request(1, stdbus.ReadRequest(4001, 1)))
    [frame] = stdbus.FrameAssembler().feed(raw)
    assert stdbus.decode_payload(frame.data) == stdbus.Reply(0x03, 4001, 1, 77.0, ParamKind.FLOAT)


def test_modbus_read_in_both_word_orders():
    for order in ("low_high", "high_low"):
        model = ControllerModel(3, ambient_c=25.0, setpoint_c=25.0)
        bus = SimBus([model], wire_unit="degC", word_order=order)
        raw = one_reply(bus, modbus.encode_request(modbus.ReadHolding(3, 360, 2)))
        reply = modbus.decode_response(raw)
        assert modbus.registers_to_float(reply.values, order) == 25.0


def test_modbus_write_then_read_setpoint_of_loop_two():
    model = ControllerModel(1, setpoint_c=25.0)
    bus = SimBus([model], wire_unit="degC")
    words = tuple(modbus.float_to_registers(150.0))
    raw = one_reply(bus, modbus.encode_request(modbus.WriteMultiple(1, 2240, words)))
    assert modbus.decode_response(raw) == modbus.WriteMultipleReply(1, 2240, 2)
    assert model.setpoint(2) == 150.0
    assert model.setpoint(1) == 25.0


def test_auto_mode_serves_both_protocols_from_one_stream_and_ignores_other_addresses():
    bus = SimBus([ControllerModel(1), ControllerModel(2)])
    stream = (
        stdbus.build_request(2, stdbus.ReadRequest(7001, 1))
        + modbus.encode_request(modbus.ReadHolding(1, 360, 2))
        + stdbus.build_request(5, stdbus.ReadRequest(7001, 1))  # nobody at address 5
    )
    outs = []
    for i in range(0, len(stream), 5):  # arbitrary chunking
        outs += bus.feed(stream[i : i + 5])
    assert len(outs) == 2
    [frame] = stdbus.FrameAssembler().feed(outs[0].data)
    assert frame.source == stdbus.device_mac(2)
    assert isinstance(modbus.decode_response(outs[1].data), modbus.ReadHoldingReply)


def test_protocol_restriction():
    bus = SimBus([ControllerModel(1)], protocol="modbus_rtu")
    assert bus.feed(stdbus.build_request(1, stdbus.ReadRequest(4001, 1))) == []


def test_refusal_on_the_wire():
    bus = SimBus([ControllerModel(1)])
    raw = one_reply(bus, stdbus.build_request(1, stdbus.WriteRequest(4001, 1, 10.0)))
    [frame] = stdbus.FrameAssembler().feed(raw)
    assert stdbus.decode_payload(frame.data) == stdbus.ErrorReply(0x80)
    raw = one_reply(bus, modbus.encode_request(modbus.ReadHolding(1, 9000, 2)))
    assert modbus.decode_response(raw) == modbus.ExceptionReply(1, 0x03, 0x02)


def test_corrupt_request_gets_no_reply():
    bus = SimBus([ControllerModel(1)])
    request = bytearray(stdbus.build_request(1, stdbus.ReadRequest(4001, 1)))
    request[-1] ^= 0xFF
    assert bus.feed(bytes(request)) == []


@pytest.mark.parametrize("kind", list(FaultKind))
def test_each_fault_applies_once(kind):
    bus = SimBus([ControllerModel(1)])
    request = stdbus.build_request(1, stdbus.ReadRequest(4001, 1))
    bus.faults.inject(kind, delay_s=0.25)
    outs = bus.feed(request)
    if kind is FaultKind.NO_REPLY:
        assert outs == []
    elif kind is FaultKind.DISCONNECT:
        assert outs == [Disconnect()]
    else:
        [out] = outs
        items = stdbus.FrameAssembler().feed(out.data)
        if kind is FaultKind.BAD_CRC:
            assert isinstance(items[0], stdbus.FrameChecksumError)
        elif kind is FaultKind.GARBAGE:
            assert items == []  # not even a preamble
        elif kind is FaultKind.ERROR_REPLY:
            assert isinstance(stdbus.decode_payload(items[0].data), stdbus.ErrorReply)
        else:
            assert out.delay_s == 0.25
    # consumed: the next request is answered normally
    [normal] = bus.feed(request)
    assert isinstance(normal, Reply)
    assert normal.delay_s == 0
    assert bus.faults.pending() == 0


def test_faults_can_target_one_address():
    bus = SimBus([ControllerModel(1), ControllerModel(2)])
    bus.faults.inject("no_reply", address=2)
    assert len(bus.feed(stdbus.build_request(1, stdbus.ReadRequest(4001, 1)))) == 1
    assert bus.feed(stdbus.build_request(2, stdbus.ReadRequest(4001, 1))) == []


def test_sim_url_parsing():
    config = parse_sim_url("sim://?seed=1&ambient=30&addresses=1,2&protocol=stdbus&tau=5")
    assert config == SimConfig(seed=1, ambient=30.0, addresses=(1, 2), protocol="stdbus", tau=5.0)
    assert parse_sim_url("sim://").canonical() == parse_sim_url("sim://?seed=0").canonical()
    for bad in ("sim://?colour=red", "sim://?addresses=40", "sim://?protocol=can", "tcp://x"):
        with pytest.raises(ValueError, match=r"sim|colour|addresses|protocol"):
            parse_sim_url(bad)
