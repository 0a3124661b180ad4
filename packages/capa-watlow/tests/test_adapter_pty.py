"""The real adapter against the simulator over real pseudo-terminals."""

import asyncio
import math
import threading
import time

import pydantic
import pytest

import capa
from capa_watlow.adapter import EzZonePM
from capa_watlow.errors import CommError, PortConflict, WordOrderMismatch
from capa_watlow.sim import url as sim_url

run = asyncio.run

PROTOCOLS = ["stdbus", "modbus_rtu"]


def batch_of(emissions):
    [batch] = [e for e in emissions if isinstance(e, capa.SampleBatch)]
    return batch


def events_of(emissions):
    return [e.kind for e in emissions if isinstance(e, capa.DeviceEvent)]


def read_until(adapter, predicate, timeout_s=5.0):
    """Poll like the runtime would until ``predicate(emissions)`` holds."""
    deadline = time.monotonic() + timeout_s
    history = []
    while time.monotonic() < deadline:
        emissions = run(adapter.read())
        history.append(emissions)
        if predicate(emissions):
            return history
    raise AssertionError(f"condition not met; last emissions {history[-1]}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_read_reports_every_field_with_device_records(make_sim, open_adapters, protocol):
    sim = make_sim()
    adapter = open_adapters(port=sim.path, protocol=protocol)
    emissions = run(adapter.read())
    batch = batch_of(emissions)
    assert batch.status is capa.SampleStatus.OK
    assert batch.values["process_value"] == [pytest.approx(25.0)]  # 77 °F on the wire
    assert batch.values["setpoint"] == [pytest.approx(25.0)]
    assert batch.values["output_power"] == [0.0]
    [records] = [e for e in emissions if isinstance(e, capa.DeviceRecords)]
    assert records.family == "watlow"
    cols = records.columns
    assert cols["process_value_wire"] == [pytest.approx(77.0)]
    assert cols["t_request_ns"][0] <= batch.t_mono_ns[0] <= cols["t_receive_ns"][0]
    assert cols["protocol"] == [protocol]


@pytest.mark.parametrize(
    ("wire", "unit", "expected_pv"),
    [("degC", "degC", 25.0), ("degF", "degF", 77.0), ("degF", "K", 298.15), ("degC", "degF", 77.0)],
)
def test_wire_unit_converts_to_channel_unit(make_sim, open_adapters, wire, unit, expected_pv):
    sim = make_sim(wire_unit=wire)
    adapter = open_adapters(port=sim.path, wire_unit=wire, unit=unit)
    assert batch_of(run(adapter.read())).values["process_value"] == [pytest.approx(expected_pv)]
    assert EzZonePM.fields(adapter.params)[0].unit == unit


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_setpoint_write_and_pv_converges(make_sim, open_adapters, protocol):
    sim = make_sim(tau_s=0.05)
    adapter = open_adapters(port=sim.path, protocol=protocol, unit="degC")
    result = run(adapter.command(capa.Command("set_setpoint", {"value": 150.0})))
    assert result.accepted, result.detail
    assert result.value == pytest.approx(150.0, abs=1e-3)
    assert sim.bus.controllers[1].setpoint() == pytest.approx(150.0, abs=1e-3)
    history = read_until(
        adapter, lambda e: abs(batch_of(e).values["process_value"][0] - 150.0) < 0.1
    )
    pvs = [batch_of(e).values["process_value"][0] for e in history]
    assert pvs == sorted(pvs)  # rises monotonically towards the set point
    assert batch_of(history[-1]).values["setpoint"] == [pytest.approx(150.0, abs=1e-3)]


def test_setpoint_of_second_loop_by_field(make_sim, open_adapters):
    sim = make_sim()
    adapter = open_adapters(port=sim.path, instances=(1, 2))
    names = [f.name for f in EzZonePM.fields(adapter.params)]
    assert names == ["process_value", "setpoint", "output_power",
                     "process_value_2", "setpoint_2", "output_power_2"]  # fmt: skip
    assert EzZonePM.writable_fields(adapter.params) == {"setpoint", "setpoint_2"}
    result = run(
        adapter.command(capa.Command("set_setpoint", {"field": "setpoint_2", "value": 60}))
    )
    assert result.accepted, result.detail
    assert sim.bus.controllers[1].setpoint(2) == pytest.approx(60.0, abs=1e-3)
    assert sim.bus.controllers[1].setpoint(1) == 25.0


def test_uniform_write_command_sets_the_named_setpoint(make_sim, open_adapters):
    # capa's method steps send `write {field, value}` to every writable device.
    sim = make_sim()
    adapter = open_adapters(port=sim.path, instances=(1, 2))
    result = run(adapter.command(capa.Command.write("setpoint_2", 75.0)))
    assert result.accepted, result.detail
    assert sim.bus.controllers[1].setpoint(2) == pytest.approx(75.0, abs=1e-3)
    not_writable = run(adapter.command(capa.Command.write("process_value", 1.0)))
    assert not not_writable.accepted
    assert "not a writable field" in not_writable.detail
    assert not run(adapter.command(capa.Command("write", {"value": 1.0}))).accepted


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refusals_are_results_not_exceptions(make_sim, open_adapters, protocol):
    sim = make_sim()
    adapter = open_adapters(port=sim.path, protocol=protocol)
    read_only = run(
        adapter.command(capa.Command("write_parameter", {"parameter": "process_value", "value": 1}))
    )
    assert not read_only.accepted
    assert "read-only" in read_only.detail
    too_hot = run(adapter.command(capa.Command("set_setpoint", {"value": 6000.0})))
    assert not too_hot.accepted
    assert "refused" in too_hot.detail
    unknown = run(adapter.command(capa.Command("explode", {})))
    assert not unknown.accepted
    assert "unknown command" in unknown.detail
    missing_loop = run(adapter.command(capa.Command("set_setpoint", {"value": 1, "instance": 3})))
    assert not missing_loop.accepted
    assert "loop 3" in missing_loop.detail
    by_id = run(adapter.command(capa.Command("write_parameter", {"parameter": 7001, "value": 99})))
    assert by_id.accepted
    assert sim.bus.controllers[1].setpoint() == pytest.approx(99.0, abs=1e-3)
    # the link stayed healthy throughout
    assert batch_of(run(adapter.read())).status is capa.SampleStatus.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_write_parameter_in_its_wire_type(make_sim, open_adapters, protocol):
    sim = make_sim()
    adapter = open_adapters(port=sim.path, protocol=protocol)
    args = {"parameter": "device_name", "value": "OVEN 3"}
    name = run(adapter.command(capa.Command("write_parameter", args)))
    if protocol == "stdbus":  # a string (type 0x09): Standard Bus only on a PM
        assert name.accepted, name.detail
        assert name.value == "OVEN 3"
        assert sim.bus.controllers[1].settings[1011] == "OVEN 3"
    else:
        assert not name.accepted
        assert "not on Modbus" in name.detail
    args = {"parameter": 1001, "value": 3}
    read_only = run(adapter.command(capa.Command("write_parameter", args)))
    assert not read_only.accepted
    assert "read-only" in read_only.detail


@pytest.mark.parametrize("order", ["low_high", "high_low"])
def test_modbus_word_order_is_checked_at_open(make_sim, open_adapters, order):
    other = "high_low" if order == "low_high" else "low_high"
    sim = make_sim(word_order=order, wire_unit="degC")
    right = open_adapters(port=sim.path, protocol="modbus_rtu", word_order=order, wire_unit="degC")
    assert batch_of(run(right.read())).values["process_value"] == [pytest.approx(25.0)]
    run(right.close())
    # A mismatch would read PV as ~1e-41 and store set points as ~0: refused at open.
    wrong = EzZonePM("oven", EzZonePM.Params(port=sim.path, protocol="modbus_rtu",
                                             word_order=other, timeout_s=0.2))  # fmt: skip
    with pytest.raises(WordOrderMismatch) as info:
        run(wrong.open())
    message = str(info.value)
    assert "\n" not in message
    assert f'word_order = "{order}"' in message
    assert "17043" in message
    assert isinstance(info.value, capa.DeviceError)
    run(wrong.close())


def test_word_order_falls_back_to_the_hardware_id_without_the_setting(make_sim):
    # A firmware without register 2488: the Hardware ID (0-38 by the PM map) decides.
    sim = make_sim(word_order="high_low")
    del sim.bus._maps[1][2488]
    wrong = EzZonePM("oven", EzZonePM.Params(port=sim.path, protocol="modbus_rtu",
                                             timeout_s=0.2))  # fmt: skip
    with pytest.raises(WordOrderMismatch, match="Hardware ID"):
        run(wrong.open())
    run(wrong.close())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_controllers_share_one_port(make_sim, open_adapters, protocol):
    sim = make_sim(addresses=(1, 2))
    a = open_adapters("a", port=sim.path, protocol=protocol, address=1)
    b = open_adapters("b", port=sim.path, protocol=protocol, address=2)
    assert EzZonePM.resource_id(a.params) == EzZonePM.resource_id(b.params) == f"serial:{sim.path}"
    assert a._port is b._port  # one connection for the bus
    assert run(b.command(capa.Command("set_setpoint", {"value": 40.0}))).accepted
    assert sim.bus.controllers[2].setpoint() == pytest.approx(40.0, abs=1e-3)
    assert sim.bus.controllers[1].setpoint() == 25.0

    # Two workers hammering the bus at once: the lock keeps every exchange whole.
    failures = []

    def poll(adapter, expected_sp):
        for _ in range(15):
            batch = batch_of(run(adapter.read()))
            if batch.status is not capa.SampleStatus.OK or batch.values["setpoint"][
                0
            ] != pytest.approx(expected_sp, abs=1e-3):
                failures.append((adapter.name, batch))

    threads = [
        threading.Thread(target=poll, args=(a, 25.0)),
        threading.Thread(target=poll, args=(b, 40.0)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_port_shared_with_another_protocol_is_refused(make_sim, open_adapters):
    sim = make_sim(addresses=(1, 2))
    open_adapters("a", port=sim.path, protocol="stdbus")
    with pytest.raises(PortConflict, match="stdbus"):
        open_adapters("b", port=sim.path, protocol="modbus_rtu", address=2)


def test_modbus_parity_is_a_param_and_part_of_port_sharing(monkeypatch):
    # A pty refuses parity (EINVAL), so the serial class is observed instead.
    import serial

    from capa_watlow import transport

    opened = []

    class Recorder:
        def __init__(self, path, baudrate, **kw):
            opened.append((path, baudrate, kw["parity"]))

    monkeypatch.setattr(serial, "Serial", Recorder)
    port = transport.acquire_port("serial:x", lambda: "/dev/x", "modbus_rtu", 9600, parity="even")
    try:
        port.ensure_open()
        assert opened == [("/dev/x", 9600, serial.PARITY_EVEN)]
        with pytest.raises(PortConflict, match="parity even"):
            transport.acquire_port("serial:x", lambda: "/dev/x", "modbus_rtu", 9600)
    finally:
        port._serial = None
        transport.release_port(port)
    with pytest.raises(pydantic.ValidationError, match="Modbus RTU only"):
        EzZonePM.Params(port="/dev/ttyUSB0", parity="even")
    assert EzZonePM.Params(port="/dev/ttyUSB0", protocol="modbus_rtu", parity="odd").parity == "odd"


EVENT_FOR = {
    "no_reply": "comm_error.no_reply",
    "bad_crc": "comm_error.bad_checksum",
    "garbage": "comm_error.garbled",
    "error_reply": "read_refused",
    "slow_reply": "comm_error.no_reply",  # at the time it is late, it is missing
    "disconnect": "comm_error.port_lost",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(EVENT_FOR))
def test_every_fault_is_reported_then_recovered(make_sim, open_adapters, protocol, fault):
    sim = make_sim()
    adapter = open_adapters(port=sim.link, protocol=protocol, retries=0, timeout_s=0.2)
    assert batch_of(run(adapter.read())).status is capa.SampleStatus.OK
    sim.bus.faults.inject(fault, delay_s=0.3)  # slow: later than the 0.2 s timeout

    failed = run(adapter.read())
    assert batch_of(failed).status is capa.SampleStatus.COMM_ERROR
    assert all(math.isnan(v[0]) for v in batch_of(failed).values.values())
    assert events_of(failed) == [EVENT_FOR[fault]]

    history = read_until(adapter, lambda e: batch_of(e).status is capa.SampleStatus.OK)
    recovered = history[-1]
    assert batch_of(recovered).values["process_value"] == [pytest.approx(25.0)]
    if fault != "error_reply":  # a refusal never dropped the link
        assert "reconnected" in events_of(recovered)
    if fault == "slow_reply":  # the late reply turned up and was discarded, and said so
        assert "comm_error.late_reply" in [k for e in history for k in events_of(e)]
    # and it stays healthy
    assert batch_of(run(adapter.read())).status is capa.SampleStatus.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconnect_after_simulator_restart(make_sim, open_adapters, protocol):
    sim = make_sim()
    adapter = open_adapters(port=sim.link, protocol=protocol, retries=0)
    run(adapter.command(capa.Command("set_setpoint", {"value": 30.0})))
    generation = sim.generation
    sim.go_down()
    down = run(adapter.read())
    assert batch_of(down).status is capa.SampleStatus.COMM_ERROR
    assert events_of(down) == ["comm_error.port_lost"]
    sim.restart()
    assert sim.generation == generation + 1  # a new terminal (its number may be reused)
    history = read_until(adapter, lambda e: batch_of(e).status is capa.SampleStatus.OK)
    assert "reconnected" in events_of(history[-1])
    assert batch_of(history[-1]).values["setpoint"] == [pytest.approx(30.0, abs=1e-3)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconnect_backs_off_while_the_port_stays_down(make_sim, open_adapters, protocol):
    sim = make_sim()
    adapter = open_adapters(port=sim.link, protocol=protocol, retries=0,
                            reconnect_max_delay_s=0.4)  # fmt: skip
    sim.go_down()  # killed while the driver is idle
    ticks = []
    start = time.monotonic()
    while time.monotonic() - start < 1.5:
        emissions = run(adapter.read())
        assert batch_of(emissions).status is capa.SampleStatus.COMM_ERROR
        ticks.append(events_of(emissions))
        time.sleep(0.02)
    attempts = [kind for tick in ticks for kind in tick]
    assert attempts[0] == "comm_error.port_lost"
    assert set(attempts[1:]) <= {"comm_error.port_unavailable", "comm_error.port_lost"}
    # back-off 0, 0.1, 0.2, 0.4, 0.4 ... s: a handful of attempts, not one per tick
    assert 2 <= len(attempts) <= 8 < len(ticks)
    sim.restart()
    history = read_until(adapter, lambda e: batch_of(e).status is capa.SampleStatus.OK)
    assert "reconnected" in events_of(history[-1])


def test_sim_url_starts_one_shared_simulator(open_adapters):
    url = "sim://?addresses=1,2&tau=0.05&seed=3"
    a = open_adapters("a", port=url, protocol="modbus_rtu", address=1)
    b = open_adapters("b", port=url, protocol="modbus_rtu", address=2)
    assert EzZonePM.resource_id(a.params) == EzZonePM.resource_id(b.params)
    assert EzZonePM.resource_id(a.params).startswith("serial:sim://?seed=3")
    sim = sim_url.running(url)
    assert sim is not None
    assert sim.path.startswith("/dev/")
    assert batch_of(run(a.read())).status is capa.SampleStatus.OK
    assert run(b.command(capa.Command("set_setpoint", {"value": 55}))).accepted
    assert sim.bus.controllers[2].setpoint() == pytest.approx(55.0, abs=1e-3)
    run(a.close())
    assert sim_url.running(url) is sim  # b still uses it
    run(b.close())
    assert sim_url.running(url) is None  # last user gone: simulator stopped


def test_handshake_reads_identity(make_sim):
    sim = make_sim()
    result = run(EzZonePM.handshake(EzZonePM.Params(port=sim.path)))
    assert result.ok, result.detail
    assert result.identity["hardware_id"] == 28  # ARM CPU, as a PM3 answers
    assert "hardware id 28" in result.detail
    absent = run(EzZonePM.handshake(EzZonePM.Params(port=sim.path, address=9, timeout_s=0.05)))
    assert not absent.ok
    assert "no reply" in absent.detail
    nowhere = run(EzZonePM.handshake(EzZonePM.Params(port="/dev/nonexistent-watlow")))
    assert not nowhere.ok
    assert "cannot open" in nowhere.detail


def test_open_fails_with_a_capa_error_when_nobody_answers(make_sim):
    sim = make_sim()
    adapter = EzZonePM("ghost", EzZonePM.Params(port=sim.path, address=7, timeout_s=0.05))
    with pytest.raises(CommError, match="address 7 does not answer") as info:
        run(adapter.open())
    assert isinstance(info.value, capa.CapaError)
    run(adapter.close())  # idempotent after a failed open


def test_discovery_finds_controllers_on_a_port(make_sim):
    from capa_watlow.discovery import discover_ports

    stdbus_sim = make_sim(addresses=(1, 3))
    modbus_sim = make_sim(addresses=(2,), protocol="modbus_rtu")
    found = discover_ports([stdbus_sim.path, modbus_sim.path], addresses=range(1, 5))
    summary = [(d.params["port"], d.params["address"], d.params["protocol"]) for d in found]
    assert summary == [(stdbus_sim.path, 1, "stdbus"), (stdbus_sim.path, 3, "stdbus"),
                       (modbus_sim.path, 2, "modbus_rtu")]  # fmt: skip
    assert all(d.adapter == "watlow.ezzone_pm" for d in found)
    # what discovery proposes really opens the device
    params = EzZonePM.Params(**found[-1].params)
    assert run(EzZonePM.handshake(params)).ok


def test_discovery_proposes_the_controllers_word_order(make_sim):
    from capa_watlow.discovery import discover_ports

    sim = make_sim(addresses=(3,), protocol="modbus_rtu", word_order="high_low")
    [found] = discover_ports([sim.path], addresses=range(1, 5))
    assert found.params["word_order"] == "high_low"
    assert "hardware id 28" in found.description  # read in the right order
    assert run(EzZonePM.handshake(EzZonePM.Params(**found.params))).ok
    wrong = run(EzZonePM.handshake(EzZonePM.Params(**{**found.params, "word_order": "low_high"})))
    assert not wrong.ok
    assert 'word_order = "high_low"' in wrong.detail


def test_params_validation():
    with pytest.raises(pydantic.ValidationError, match="1-16"):
        EzZonePM.Params(port="/dev/ttyUSB0", address=17)
    EzZonePM.Params(port="/dev/ttyUSB0", address=17, protocol="modbus_rtu")
    with pytest.raises(pydantic.ValidationError, match="colour"):
        EzZonePM.Params(port="sim://?colour=red")
    with pytest.raises(pydantic.ValidationError, match="instances"):
        EzZonePM.Params(port="/dev/ttyUSB0", instances=(1, 1))
    with pytest.raises(pydantic.ValidationError, match="register map defines 2 loops"):
        EzZonePM.Params(port="/dev/ttyUSB0", instances=(1, 3))
    with pytest.raises(pydantic.ValidationError, match="extra"):
        EzZonePM.Params(port="/dev/ttyUSB0", baud=9600)
    assert EzZonePM.Params(port="x", protocol="modbus_rtu").line_speed == 9600
    assert EzZonePM.resource_id(EzZonePM.Params(port="/dev/ttyUSB0")) == "serial:/dev/ttyUSB0"


def test_reconnect_never_leaves_the_device_failed(make_sim, open_adapters):
    sim = make_sim()
    adapter = open_adapters(port=sim.link, retries=0, reconnect="never")
    sim.bus.faults.inject("no_reply")
    assert events_of(run(adapter.read())) == ["comm_error.no_reply"]
    for _ in range(3):  # the simulator is fine again, but the policy says stay down
        later = run(adapter.read())
        assert batch_of(later).status is capa.SampleStatus.COMM_ERROR
        assert events_of(later) == []  # one event for the failure, not one per tick
    assert run(adapter.snapshot())["comm_failed"] is True
    refused = run(adapter.command(capa.Command("set_setpoint", {"value": 50})))
    assert not refused.accepted
    assert "never" in refused.detail
    assert sim.bus.controllers[1].setpoint() == 25.0


def test_discover_classmethod_scans_the_listed_ports(make_sim, monkeypatch):
    from capa_watlow import discovery

    sim = make_sim(addresses=(4,))
    monkeypatch.setattr(discovery, "list_serial_ports", lambda: [sim.path])
    [found] = run(EzZonePM.discover())
    assert found.resource_id == f"serial:{sim.path}"
    assert found.params == {"port": sim.path, "address": 4, "protocol": "stdbus", "baudrate": 38400}
    assert "hardware id 28" in found.description
