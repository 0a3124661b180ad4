"""sartoriuslib's SBI client (validated on balances) drives capa's simulator over a pty.

Identify, print (``ESC P``), tare / zero, overload and underload lines, and autoprint
streaming must all decode in the independent client to what the simulated balance holds.
"""

from __future__ import annotations

import anyio
import pytest
from sartoriuslib import ProtocolKind, open_device
from sartoriuslib.protocol.sbi import TOKEN_PRINT, parse_reply
from sartoriuslib.transport.base import SerialSettings
from sartoriuslib.transport.serial import SerialTransport

from capa_sartorius import sbi

pytestmark = pytest.mark.filterwarnings("ignore:.*priors mismatch")


async def _open(sim, **kw):
    return await open_device(
        sim.path,
        protocol=ProtocolKind.SBI,
        serial_settings=SerialSettings(port=sim.path),
        timeout=1.0,
        **kw,
    )


def test_identify(make_sim):
    sim = make_sim("sbi", model="BCE3202-1S", serial="0031801165", software="00-39-21")

    async def go():
        async with await _open(sim) as balance:
            return balance.info

    info = anyio.run(go)
    assert info.model == "BCE3202-1S"
    # sartoriuslib keeps the whole line; capa drops the Cubis label (see capa's test).
    assert info.serial.split()[-1] == "0031801165"
    assert info.software.split()[-1] == "00-39-21"
    line = f"{info.serial}\r\n".encode()
    assert sbi.parse_text(line) == "0031801165"


@pytest.mark.parametrize("mass_g", [50.0, 0.0123, 199.9999])
def test_print_reading(make_sim, mass_g):
    sim = make_sim("sbi", mass_g=mass_g)

    async def go():
        async with await _open(sim, identify=False) as balance:
            return await balance.poll()

    reading = anyio.run(go)
    assert reading.value == pytest.approx(mass_g, abs=5e-5)
    assert reading.unit.value == "g"
    assert reading.stable is True
    assert reading.decimals == 4


def test_tare_then_unstable_then_stable_zero(make_sim):
    sim = make_sim("sbi", mass_g=30.0, tare_settle_s=0.5)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.tare()  # sartoriuslib sends ESC T (the TARE key)
            right_after = await balance.poll()
            await anyio.sleep(0.7)
            return right_after, await balance.poll()

    right_after, settled = anyio.run(go)
    assert right_after.stable is False
    assert settled.stable is True
    assert settled.value == pytest.approx(0.0, abs=1e-4)


def test_zero(make_sim):
    sim = make_sim("sbi", mass_g=1.5, tare_settle_s=0.2)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.zero()
            await anyio.sleep(0.3)
            return await balance.poll()

    assert anyio.run(go).value == pytest.approx(0.0, abs=1e-4)


def test_overload_and_underload_lines(make_sim):
    sim = make_sim("sbi", mass_g=500.0, capacity_g=220.0)

    async def go():
        transport = SerialTransport(SerialSettings(port=sim.path))
        await transport.open()
        try:
            out = []
            for present in (True, False):
                sim.model.set_pan(present=present)
                await transport.write(TOKEN_PRINT, timeout=1.0)
                out.append(parse_reply(await transport.read_until(b"\r\n", timeout=1.0)))
            return out
        finally:
            await transport.close()

    over, under = anyio.run(go)
    assert over.lines[0].reading.overload is True
    assert under.lines[0].reading.underload is True


def test_autoprint_stream(make_sim):
    sim = make_sim("sbi", mass_g=12.5, autoprint_hz=20.0)

    async def go():
        async with await _open(sim, identify=False) as balance:
            # The client sniffed the unprompted lines: it reads them without ESC P.
            assert balance.session.sbi_autoprint_active
            return [await balance.poll() for _ in range(5)]

    readings = anyio.run(go)
    assert all(r.value == pytest.approx(12.5, abs=5e-5) for r in readings)
    assert all(r.stable for r in readings)
