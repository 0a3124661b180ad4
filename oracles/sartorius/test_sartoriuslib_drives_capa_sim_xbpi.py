"""sartoriuslib's xBPI client (validated on balances) drives capa's simulator over a pty.

Every operation capa's driver uses over xBPI -- identify, net and gross weight,
stability, tare, zero, internal adjustment, the status block (overload / underload) --
is asked by the independent client and must decode to what the simulated balance holds.
"""

from __future__ import annotations

import time

import anyio
import pytest
from sartoriuslib import ProtocolKind, open_device
from sartoriuslib.errors import (
    SartoriusMissingArgsError,
    SartoriusOperationNotApplicableError,
    SartoriusUnsupportedCommandError,
)
from sartoriuslib.transport.base import SerialSettings

# Opening with identify=False leaves sartoriuslib without capability priors; it warns and
# sends the command anyway, which is what these tests want.
pytestmark = pytest.mark.filterwarnings("ignore:.*priors mismatch")


async def _open(sim, **kw):
    return await open_device(
        sim.path,
        protocol=ProtocolKind.XBPI,
        serial_settings=SerialSettings(port=sim.path),
        timeout=1.0,
        **kw,
    )


def test_identify_reads_model_serial_software(make_sim):
    sim = make_sim("xbpi", model="MSE1203S-100-DR", serial="0031801165", software="00-39-21")

    async def go():
        async with await _open(sim) as balance:
            return balance.info

    info = anyio.run(go)
    assert info.model == "MSE1203S-100-DR"
    assert info.manufacturer == "Sartorius"
    # A Cubis sends its serial number as 5 bytes whose hex digits are the number.
    assert info.factory_number.hex() == "0031801165"
    assert info.software.startswith("003921")
    assert info.sbn == 0


@pytest.mark.parametrize(("mass_g", "decimals"), [(50.0, 4), (123.456, 3), (0.0, 2)])
def test_net_weight_value_unit_decimals_and_stability(make_sim, mass_g, decimals):
    sim = make_sim("xbpi", mass_g=mass_g, decimals=decimals)

    async def go():
        async with await _open(sim, identify=False) as balance:
            return await balance.read_net()

    reading = anyio.run(go)
    assert reading.value == pytest.approx(mass_g, abs=10**-decimals / 2)
    assert reading.unit.value == "g"
    assert reading.decimals == decimals
    assert reading.stable is True
    assert reading.status_flags["off_scale"] is False


def test_gross_and_tare_values_after_tare(make_sim):
    sim = make_sim("xbpi", mass_g=80.0, tare_settle_s=0.5)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.tare()
            right_after = await balance.read_net()
            await anyio.sleep(0.7)
            settled = await balance.read_net()
            gross = await balance.read_gross()
            tare = await balance.read_tare_value()
            return right_after, settled, gross, tare

    right_after, settled, gross, tare = anyio.run(go)
    assert right_after.stable is False  # the balance re-settles after a tare
    assert settled.stable is True
    assert settled.value == pytest.approx(0.0, abs=1e-4)
    assert gross.value == pytest.approx(80.0, abs=1e-4)
    assert tare.value == pytest.approx(80.0, abs=1e-4)


def test_zero_within_range_and_refused_outside(make_sim):
    sim = make_sim("xbpi", mass_g=1.0, capacity_g=220.0, tare_settle_s=0.2)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.zero()  # 1 g is inside the 2 % zero range
            await anyio.sleep(0.3)
            zeroed = await balance.read_net()
            sim.model.place(100.0)
            with pytest.raises(SartoriusOperationNotApplicableError):
                await balance.zero()
            return zeroed

    assert anyio.run(go).value == pytest.approx(0.0, abs=1e-4)


def test_status_block_stable_overload_underload(make_sim):
    sim = make_sim("xbpi", mass_g=10.0, capacity_g=220.0, settle_s=0.0)

    async def go():
        async with await _open(sim, identify=False) as balance:
            stable = await balance.status()
            sim.model.place(500.0)
            over = await balance.status()
            over_reading = await balance.read_net()
            sim.model.set_pan(present=False)
            under = await balance.status()
            return stable, over, over_reading, under

    stable, over, over_reading, under = anyio.run(go)
    assert stable.state.value == "stable"
    assert over.state.value == "overload"
    assert over_reading.value is None
    assert over_reading.status_flags["off_scale"] is True
    assert under.state.value == "underload"


def test_internal_adjustment_is_acknowledged_then_readings_are_unstable(make_sim):
    sim = make_sim("xbpi", mass_g=10.0, adjust_s=0.5)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.internal_adjust(confirm=True)
            return await balance.read_net()

    assert anyio.run(go).stable is False


def test_unknown_opcode_and_missing_argument_get_the_balances_error_codes(make_sim):
    sim = make_sim("xbpi")

    async def go():
        async with await _open(sim, identify=False) as balance:
            with pytest.raises(SartoriusUnsupportedCommandError):
                await balance.raw_xbpi(0x8F, confirm=True)  # no balance implements it -> 0x04
            with pytest.raises(SartoriusMissingArgsError):
                await balance.raw_xbpi(0x1F)  # high resolution needs its factor -> 0x07
            return await balance.read_net(hires=1)

    hires = anyio.run(go)
    assert hires.decimals == 5  # ten times the resolution: one more decimal


def test_cell_busy_after_zero_is_off_scale_then_a_value(make_sim):
    sim = make_sim("xbpi", mass_g=0.5, zero_busy_s=0.4, tare_settle_s=0.1)

    async def go():
        async with await _open(sim, identify=False) as balance:
            await balance.zero()
            busy = await balance.read_net()
            status = await balance.status()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                after = await balance.read_net()
                if after.value is not None and after.stable:
                    return busy, status, after
                await anyio.sleep(0.05)
            raise AssertionError("the cell never came back")

    busy, status, after = anyio.run(go)
    assert busy.value is None
    assert busy.status_flags["off_scale"]
    assert status.state.value not in ("overload", "underload")
    assert after.value == pytest.approx(0.0, abs=1e-4)
