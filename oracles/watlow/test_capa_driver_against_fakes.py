"""capa's unmodified Watlow driver against devices it did not write.

- Modbus RTU: anymodbus' ``MockSlave`` (an independent Modbus slave) preloaded with a
  PM's registers, served on a pty, in both word orders: open (with the word-order
  check), every loop field, set points written to the right registers in the right
  order, a mismatch refused, and the slave's own fault injection (corrupted CRC,
  dropped reply, foreign address) reported as distinct failures.
- Standard Bus: a pty that only answers the exact request bytes a real PM3 was sent
  (watlowlib's captures) with the PM3's reply: capa's client must produce the captured
  requests byte for byte and decode the captured replies.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from anymodbus import RegisterType, WordOrder
from anymodbus import decode as am_decode
from anymodbus import encode as am_encode
from anymodbus.testing import FaultPlan, MockSlave

import capa
from capa_watlow.adapter import EzZonePM
from capa_watlow.client import StdBusClient
from capa_watlow.errors import NoSuchObject, WordOrderMismatch
from capa_watlow.params import by_id, by_name
from capa_watlow.transport import SharedPort

run = asyncio.run
ORDERS = {"low_high": WordOrder.LOW_HIGH, "high_low": WordOrder.HIGH_LOW}


def _captures() -> Any:
    spec = importlib.util.spec_from_file_location(
        "watlow_captures", Path(__file__).with_name("captures.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pm_slave(
    order: str, *, setting: int | None = None, faults: FaultPlan | None = None
) -> MockSlave:
    """A MockSlave holding a two-loop PM's registers (temperatures in degF)."""
    wo = ORDERS[order]
    slave = MockSlave(address=1, register_count=4096, faults=faults)
    regs = slave.holding_registers

    def put(register: int, value: float, kind: RegisterType = RegisterType.FLOAT32) -> None:
        words = am_encode(value, type=kind, word_order=wo)
        regs[register : register + len(words)] = list(words)

    put(0, 28, RegisterType.INT32)  # Hardware ID (ARM)
    regs[2488] = (1331 if order == "low_high" else 1330) if setting is None else setting
    for register, value in ((360, 77.0), (2160, 77.0), (1904, 12.5),
                            (440, 212.0), (2240, 212.0), (1974, 50.0)):  # fmt: skip
        put(register, value)
    return slave


def adapter(path: str, order: str, **params: Any) -> EzZonePM:
    params.setdefault("timeout_s", 0.3)
    return EzZonePM(
        "pm", EzZonePM.Params(port=path, protocol="modbus_rtu", word_order=order,
                              instances=(1, 2), **params),
    )  # fmt: skip


def batch_of(emissions: Any) -> capa.SampleBatch:
    [batch] = [e for e in emissions if isinstance(e, capa.SampleBatch)]
    return batch


def kinds(emissions: Any) -> list[str]:
    return [e.kind for e in emissions if isinstance(e, capa.DeviceEvent)]


@pytest.mark.parametrize("order", list(ORDERS))
def test_capa_reads_and_writes_a_mock_slave_in_both_word_orders(mock_slave_pty, order):
    slave = pm_slave(order)
    pm = adapter(mock_slave_pty(slave), order)
    run(pm.open())
    try:
        batch = batch_of(run(pm.read()))
        assert batch.status is capa.SampleStatus.OK
        assert batch.values["process_value"] == [pytest.approx(25.0)]  # 77 degF
        assert batch.values["setpoint"] == [pytest.approx(25.0)]
        assert batch.values["output_power"] == [pytest.approx(12.5)]
        assert batch.values["process_value_2"] == [pytest.approx(100.0)]  # 212 degF at 440
        assert batch.values["setpoint_2"] == [pytest.approx(100.0)]
        assert batch.values["output_power_2"] == [pytest.approx(50.0)]

        result = run(pm.command(capa.Command("set_setpoint", {"value": 30.0})))
        assert result.accepted, result.detail
        words = tuple(slave.holding_registers[2160:2162])
        assert am_decode(words, type=RegisterType.FLOAT32, word_order=ORDERS[order]) == (
            pytest.approx(86.0)
        )
        result = run(pm.command(capa.Command.write("setpoint_2", 150.0)))
        assert result.accepted, result.detail
        words = tuple(slave.holding_registers[2240:2242])
        assert am_decode(words, type=RegisterType.FLOAT32, word_order=ORDERS[order]) == (
            pytest.approx(302.0)
        )
        assert result.value == pytest.approx(150.0)
    finally:
        run(pm.close())


@pytest.mark.parametrize("order", list(ORDERS))
def test_word_order_mismatch_with_a_mock_slave_is_refused(mock_slave_pty, order):
    other = "high_low" if order == "low_high" else "low_high"
    path = mock_slave_pty(pm_slave(order))
    pm = adapter(path, other)
    with pytest.raises(WordOrderMismatch, match=f'word_order = "{order}"'):
        run(pm.open())
    run(pm.close())


def test_without_the_setting_the_hardware_id_decides(mock_slave_pty):
    # register 2488 holds nothing meaningful (0): the Hardware ID (0-38) tells the order
    path = mock_slave_pty(pm_slave("high_low", setting=0))
    with pytest.raises(WordOrderMismatch, match="Hardware ID"):
        run(adapter(path, "low_high").open())
    pm = adapter(path, "high_low")
    run(pm.open())
    try:
        assert batch_of(run(pm.read())).values["process_value"] == [pytest.approx(25.0)]
    finally:
        run(pm.close())


# open() sends two requests (Hardware ID, word-order setting); the first tick's first
# request is the slave's response number 2.
@pytest.mark.parametrize(
    ("plan", "kind"),
    [(FaultPlan(corrupt_crc_after_n=2), "comm_error.bad_checksum"),
     (FaultPlan(drop_response_after_n=2), "comm_error.no_reply"),
     (FaultPlan(wrong_slave_address=7), "comm_error.garbled")],
)  # fmt: skip
def test_mock_slave_faults_are_told_apart(mock_slave_pty, plan, kind):
    steady = plan.wrong_slave_address is None
    slave = pm_slave("low_high", faults=plan if steady else None)
    pm = adapter(mock_slave_pty(slave), "low_high", retries=0, timeout_s=0.2)
    run(pm.open())
    try:
        if not steady:
            slave.faults = plan  # every reply from now on comes from unit 7
        failed = run(pm.read())
        assert kinds(failed) == [kind]
        assert batch_of(failed).status is capa.SampleStatus.COMM_ERROR
        if steady:  # a one-shot fault: the next ticks reconnect and read again
            for _ in range(20):
                later = run(pm.read())
                if batch_of(later).status is capa.SampleStatus.OK:
                    break
            assert "reconnected" in kinds(later)
            assert batch_of(later).values["process_value"] == [pytest.approx(25.0)]
    finally:
        run(pm.close())


# ---------------------------------------------------------------- Standard Bus replay
def test_capa_stdbus_client_against_captured_pm3_traffic(replay_pty):
    captures = _captures()
    script = {bytes.fromhex(req): bytes.fromhex(rep) for _, req, rep in captures.STDBUS_ROUNDS}
    path, unanswered = replay_pty(script)
    port = SharedPort("serial:replay", lambda: path, "stdbus", 38400, timeout_s=0.3)
    client = StdBusClient(port, 1, 0.5)
    try:
        assert client.read(by_name("process_value"), 1) == 2531.8017578125  # 0x451E3CD4
        assert client.write(by_name("setpoint"), 1, 392.0) == 392.0
        assert client.read(by_name("setpoint"), 1) == 392.0
        assert client.read(by_name("hardware_id"), 1) == 28
        assert client.read(by_id(1009), 1) == "PM3R1CA-AAAAAAA"
    finally:
        port.close()
    assert unanswered == []  # every request capa sent was byte-identical to a captured one


def test_capa_adapter_opens_on_captured_pm3_traffic(replay_pty):
    captures = _captures()
    script = {bytes.fromhex(req): bytes.fromhex(rep) for _, req, rep in captures.STDBUS_ROUNDS}
    path, unanswered = replay_pty(script)
    pm = EzZonePM("pm3", EzZonePM.Params(port=path, protocol="stdbus", timeout_s=0.3))
    run(pm.open())  # reads Hardware ID: type 0x06 in the capture
    try:
        result = run(pm.command(capa.Command("write_parameter",
                                             {"parameter": 7001, "value": 200.0})))  # fmt: skip
        assert result.accepted, result.detail  # 200 degC = 392 degF: the captured write
        assert result.value == pytest.approx(200.0)
    finally:
        run(pm.close())
    assert unanswered == []


def test_captured_error_reply_through_capa_client(replay_pty):
    # The PM3 answered 02 81 (no such object); frame it as its reply to a request.
    from capa_watlow import stdbus

    request = stdbus.build_request(1, stdbus.ReadRequest(99001, 1))
    reply = stdbus.encode_frame(stdbus.Frame(stdbus.REPLY, 0x00, 0x10, bytes.fromhex("02 81")))
    path, _ = replay_pty({request: reply})
    port = SharedPort("serial:replay", lambda: path, "stdbus", 38400, timeout_s=0.3)
    try:
        from capa_watlow.params import ParamKind, ParamSpec

        spec = ParamSpec("x", 99001, ParamKind.FLOAT, None)
        with pytest.raises(NoSuchObject):
            StdBusClient(port, 1, 0.5).read(spec, 1)
    finally:
        port.close()
