"""watlowlib (validated on a PM3) and anymodbus drive capa's EZ-Zone PM simulator.

Every operation capa's driver performs is done here by the independent client against
capa's simulator over a real pty: identity, process value, set point (read, write, read
back), heat power, loop 2, refusals with the PM3's error codes, Modbus in both word
orders (watlowlib speaks High_Low only, the word order its PM3 fixture uses; anymodbus
covers Low_High, the factory default), and Modbus exceptions for functions the
simulator does not implement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import serial
from anymodbus import (
    BusConfig,
    IllegalDataAddressError,
    IllegalFunctionError,
    WordOrder,
    open_modbus_rtu,
)
from watlowlib import errors as wl_errors
from watlowlib import open_device
from watlowlib.protocol.base import ProtocolKind
from watlowlib.protocol.stdbus import framing as wl_framing
from watlowlib.protocol.stdbus import payload as wl_payload
from watlowlib.transport.base import SerialSettings

T = TypeVar("T")
F_77 = 77.0  # the simulator's 25 degC at rest, on a degF wire (factory communications unit)


def run(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


def c_to_f(c: float) -> float:
    return c * 9 / 5 + 32


# ---------------------------------------------------------------- Standard Bus
def test_watlowlib_stdbus_identity_and_loop_one(capa_sim):
    sim = capa_sim(protocol="stdbus")
    model = sim.bus.controllers[1]

    async def session() -> dict[str, Any]:
        ctl = await open_device(sim.path, protocol=ProtocolKind.STDBUS, address=1)
        async with ctl:
            info = ctl._device_info
            return {
                "part": info.part_number.raw,
                "hardware_id": info.hardware_id,
                "firmware_id": info.firmware_id,
                "health": info.health.value,
                "pv": (await ctl.read_pv()).value,
                "sp": (await ctl.read_setpoint()).value,
                "set": (await ctl.set_setpoint(c_to_f(100.0), confirm=True)).value,
                "sp_after": (await ctl.read_setpoint()).value,
                "power": (await ctl.read_parameter(8011)).value,
                "mode": (await ctl.read_parameter(8002)).value,
                "units": (await ctl.read_parameter(17050)).value,
                "word_order": (await ctl.read_parameter(17043)).value,
                "name": (await ctl.read_parameter(1011)).value,
                "serial": (await ctl.read_parameter(1032)).value,
            }

    got = run(session)
    assert got["part"] == "PM3R1CA-AAAAAAA"
    assert got["hardware_id"] == 28
    assert got["firmware_id"] == 9
    assert got["health"] == "ok"  # every identity parameter answered
    assert got["pv"] == pytest.approx(F_77)
    assert got["sp"] == pytest.approx(F_77)
    assert got["set"] == pytest.approx(212.0)
    assert got["sp_after"] == pytest.approx(212.0)
    assert model.setpoint() == pytest.approx(100.0, abs=1e-3)
    assert 0.0 <= got["power"] <= 100.0
    assert (got["mode"], got["units"], got["word_order"]) == (10, 30, 1331)
    assert got["name"] == "EZ-ZONE PM"
    assert got["serial"] == "1000001"


def test_watlowlib_stdbus_loop_two(capa_sim):
    sim = capa_sim(protocol="stdbus")

    async def session() -> tuple[float, float, float]:
        ctl = await open_device(sim.path, protocol=ProtocolKind.STDBUS, identify=False)
        async with ctl:
            echoed = (await ctl.set_setpoint(c_to_f(60.0), instance=2, confirm=True)).value
            pv = (await ctl.read_pv(instance=2)).value
            power = (await ctl.read_parameter(8011, instance=2)).value
        return echoed, pv, power

    echoed, pv, power = run(session)
    assert echoed == pytest.approx(c_to_f(60.0))
    assert sim.bus.controllers[1].setpoint(2) == pytest.approx(60.0, abs=1e-3)
    assert sim.bus.controllers[1].setpoint(1) == pytest.approx(25.0)
    assert F_77 <= pv <= c_to_f(60.0) + 1e-3
    assert 0.0 <= power <= 100.0


def test_watlowlib_writes_a_string_parameter(capa_sim):
    # capa's write_parameter writes any type; the Device Name (1011) is a writable string.
    sim = capa_sim(protocol="stdbus")

    async def session() -> tuple[object, object]:
        ctl = await open_device(sim.path, protocol=ProtocolKind.STDBUS, identify=False)
        async with ctl:
            echoed = (await ctl.write_parameter(1011, "OVEN 3", confirm=True)).value
            return echoed, (await ctl.read_parameter(1011)).value

    assert run(session) == ("OVEN 3", "OVEN 3")
    assert sim.bus.controllers[1].settings[1011] == "OVEN 3"


@pytest.mark.parametrize(
    ("param_id", "error"),
    [(8003, wl_errors.WatlowNoSuchAttributeError),  # class 8 exists, member 3 not simulated
     (9001, wl_errors.WatlowNoSuchObjectError)],  # no class 9 in the simulator
)  # fmt: skip
def test_watlowlib_sees_the_pm3_error_codes(capa_sim, param_id, error):
    sim = capa_sim(protocol="stdbus")

    async def session() -> None:
        ctl = await open_device(sim.path, protocol=ProtocolKind.STDBUS, identify=False)
        async with ctl:
            await ctl.read_parameter(param_id)

    with pytest.raises(error):
        run(session)


def test_no_such_instance_with_watlowlib_codec(capa_sim):
    # watlowlib's facade refuses instance 3 before the wire, so frame it with its codec.
    sim = capa_sim(protocol="stdbus")
    request = wl_framing.encode_frame(
        wl_framing.Frame(0x05, 0x10, 0x00, wl_payload.encode_read_request(4001, 3))
    )
    with serial.Serial(sim.path, 38400, timeout=2) as port:
        port.write(request)
        head = port.read(8)
        length = int.from_bytes(head[5:7], "big")
        raw = head + port.read(length + 2)
    answer = wl_payload.decode_payload(wl_framing.decode_frame(raw).payload)
    assert answer == wl_payload.ErrorResponse(0x84)
    with pytest.raises(wl_errors.WatlowNoSuchInstanceError):
        wl_payload.raise_for_error_code(answer.code)


# ---------------------------------------------------------------- Modbus RTU, High_Low
def test_watlowlib_modbus_high_low(capa_sim):
    sim = capa_sim(protocol="modbus_rtu", word_order="high_low")
    model = sim.bus.controllers[1]
    settings = SerialSettings(port=sim.path, baudrate=9600)

    async def session() -> dict[str, Any]:
        ctl = await open_device(
            sim.path, protocol=ProtocolKind.MODBUS_RTU, serial_settings=settings, identify=False
        )
        async with ctl:
            return {
                "hardware_id": (await ctl.read_parameter(1001)).value,
                "firmware_id": (await ctl.read_parameter(1002)).value,
                "pv": (await ctl.read_pv()).value,
                "set": (await ctl.set_setpoint(c_to_f(80.0), confirm=True)).value,
                "sp": (await ctl.read_setpoint()).value,
                "power": (await ctl.read_parameter(8011)).value,
                "word_order": (await ctl.read_parameter(17043)).value,
                "units": (await ctl.read_parameter(17050)).value,
            }

    got = run(session)
    assert (got["hardware_id"], got["firmware_id"]) == (28, 9)
    assert got["pv"] == pytest.approx(F_77)
    assert got["set"] == pytest.approx(c_to_f(80.0))
    assert got["sp"] == pytest.approx(c_to_f(80.0))
    assert model.setpoint(1) == pytest.approx(80.0, abs=1e-3)
    assert 0.0 <= got["power"] <= 100.0
    assert (got["word_order"], got["units"]) == (1330, 30)
    # watlowlib 0.8.1 has no Modbus instance arithmetic (loop 2 on Modbus raises
    # WatlowProtocolUnsupportedError); anymodbus covers loop 2's registers below.


# ---------------------------------------------------------------- Modbus RTU, both orders
@pytest.mark.parametrize("order", ["low_high", "high_low"])
def test_anymodbus_reads_and_writes_in_both_word_orders(capa_sim, order):
    sim = capa_sim(protocol="modbus_rtu", word_order=order)
    model = sim.bus.controllers[1]
    wo = WordOrder.LOW_HIGH if order == "low_high" else WordOrder.HIGH_LOW

    async def session() -> dict[str, Any]:
        bus = await open_modbus_rtu(sim.path, baudrate=9600, parity="none")
        async with bus:
            pm = bus.slave(1)
            await pm.write_float(2160, c_to_f(50.0), word_order=wo)
            await pm.write_float(2240, c_to_f(70.0), word_order=wo)
            return {
                "hardware_id": await pm.read_int32(0, word_order=wo),
                "setting": await pm.read_holding_registers(2488, count=1),
                "pv": await pm.read_float(360, word_order=wo),
                "sp": await pm.read_float(2160, word_order=wo),
                "power": await pm.read_float(1904, word_order=wo),
                "pv_2": await pm.read_float(440, word_order=wo),
                "sp_2": await pm.read_float(2240, word_order=wo),
                "power_2": await pm.read_float(1974, word_order=wo),
            }

    got = run(session)
    assert got["hardware_id"] == 28
    assert got["setting"] == ((1331,) if order == "low_high" else (1330,))
    assert got["pv"] >= F_77 - 1e-3
    assert got["sp"] == pytest.approx(c_to_f(50.0))
    assert got["sp_2"] == pytest.approx(c_to_f(70.0))
    assert (model.setpoint(1), model.setpoint(2)) == (
        pytest.approx(50.0, abs=1e-3), pytest.approx(70.0, abs=1e-3),
    )  # fmt: skip
    assert 0.0 <= got["power"] <= 100.0
    assert 0.0 <= got["power_2"] <= 100.0
    assert got["pv_2"] >= F_77 - 1e-3


@pytest.mark.parametrize(
    "call",
    [lambda pm: pm.read_input_registers(360, count=2),  # function 0x04
     lambda pm: pm.write_register(2488, 1330),  # function 0x06
     lambda pm: pm.read_coils(0, count=1)],  # function 0x01
)  # fmt: skip
def test_unimplemented_functions_get_illegal_function_not_silence(capa_sim, call):
    sim = capa_sim(protocol="modbus_rtu")

    async def session() -> None:
        config = BusConfig(request_timeout=2.0)
        bus = await open_modbus_rtu(sim.path, baudrate=9600, parity="none", config=config)
        async with bus:
            await call(bus.slave(1))

    with pytest.raises(IllegalFunctionError):  # a timeout would raise FrameTimeoutError
        run(session)


def test_unknown_register_is_illegal_data_address(capa_sim):
    sim = capa_sim(protocol="modbus_rtu")

    async def session() -> None:
        bus = await open_modbus_rtu(sim.path, baudrate=9600, parity="none")
        async with bus:
            await bus.slave(1).read_holding_registers(450, count=2)  # not on the PM map

    with pytest.raises(IllegalDataAddressError):
        run(session)
