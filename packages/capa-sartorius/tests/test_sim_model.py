"""The balance model and the protocol responders, driven by a fake clock (no I/O)."""

import math

import pytest

from capa_sartorius import sbi, xbpi
from capa_sartorius.sim import BalanceConfig, BalanceModel, SbiResponder, XbpiResponder


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


def model(clock, **kw):
    return BalanceModel(BalanceConfig(**kw), clock=clock)


def test_specimen_loses_mass_linearly_and_stops_at_zero(clock):
    m = model(clock, mass_g=10.0, loss_g_per_s=0.5)
    assert m.state().net_g == pytest.approx(10.0)
    clock.t += 4
    assert m.state().net_g == pytest.approx(8.0)
    clock.t += 100
    assert m.state().net_g == pytest.approx(0.0)


def test_new_load_is_unstable_until_it_settles(clock):
    m = model(clock, mass_g=10.0, settle_s=1.0)
    assert m.state().stable
    m.place(60.0)
    s = m.state()
    assert not s.stable
    assert s.net_g == pytest.approx(10.0)  # the reading starts where it was
    clock.t += 0.5
    assert not m.state().stable
    clock.t += 0.6
    s = m.state()
    assert s.stable
    assert s.net_g == pytest.approx(60.0)


def test_tare_and_zero(clock):
    m = model(clock, mass_g=30.0, capacity_g=100.0, tare_settle_s=1.0)
    assert m.zero() is not None  # 30 g is outside the 2 g zero range
    assert m.tare() is None
    assert m.state().net_g == pytest.approx(0.0, abs=1e-3)
    clock.t += 1.1
    assert m.state().net_g == pytest.approx(0.0)
    m.place(31.0)
    clock.t += 1
    assert m.state().net_g == pytest.approx(1.0)
    m.place(1.0)
    clock.t += 1
    assert m.zero() is None  # within the zero range: gross becomes 0, tare cleared
    assert not m.state().stable  # re-settling after the zero
    clock.t += 1.1
    assert m.state().net_g == pytest.approx(0.0)
    m.place(5.0)
    clock.t += 1
    assert m.state().net_g == pytest.approx(4.0)


def test_tare_key_zeroes_near_zero_and_tares_otherwise(clock):
    m = model(clock, mass_g=0.5, capacity_g=100.0)
    assert m.tare_zero() is None
    m.place(20.5)
    clock.t += 1
    assert m.state().net_g == pytest.approx(20.0)  # zeroed at 0.5 g
    assert m.tare_zero() is None
    clock.t += 2  # the reading re-settles after a tare
    assert m.state().net_g == pytest.approx(0.0)  # tared at 20.5 g


def test_overload_underload_and_refusals(clock):
    m = model(clock, mass_g=50.0, capacity_g=100.0)
    m.place(150.0)
    clock.t += 1
    assert m.state().overload
    assert m.tare() is not None
    assert m.internal_adjust() is not None
    m.place(50.0)
    m.set_pan(present=False)
    clock.t += 1
    assert m.state().underload
    m.set_pan(present=True)
    clock.t += 1
    assert not m.state().underload


def test_internal_adjustment_is_unstable_then_busy(clock):
    m = model(clock, adjust_s=2.0)
    assert m.internal_adjust() is None
    assert m.state().adjusting
    assert not m.state().stable
    assert m.internal_adjust() is not None
    assert m.tare() is not None
    clock.t += 2.5
    assert m.state().stable


@pytest.mark.parametrize("action", ["tare", "zero"])
def test_tare_and_zero_start_a_settling_period(clock, action):
    # A real balance shows the new reading unstable for a while after taring / zeroing.
    m = model(clock, mass_g=1.0, capacity_g=100.0, tare_settle_s=1.5, decimals=4)
    assert m.state().stable
    assert getattr(m, action)() is None
    s = m.state()
    assert not s.stable
    assert abs(s.net_g) < 1e-3  # it jumps to about zero, it does not swing from 1 g
    clock.t += 1.0
    assert not m.state().stable
    clock.t += 0.6
    s = m.state()
    assert s.stable
    assert s.net_g == pytest.approx(0.0)


def test_zero_busy_period(clock):
    m = model(clock, mass_g=0.5, zero_busy_s=2.0, tare_settle_s=0.5)
    assert m.zero() is None
    assert m.state().busy
    clock.t += 2.1
    assert not m.state().busy
    assert m.state().stable


def test_gross_and_tare_values(clock):
    m = model(clock, mass_g=40.0)
    m.tare()
    clock.t += 5
    s = m.state()
    assert (s.net_g, s.gross_g, s.tare_g) == (pytest.approx(0.0), pytest.approx(40.0), 40.0)


def test_noise_is_seeded(clock):
    a = model(clock, noise_g=0.01, seed=7)
    b = model(clock, noise_g=0.01, seed=7)
    assert [a.state().net_g for _ in range(5)] == [b.state().net_g for _ in range(5)]


# ------------------------------------------------------------------ responders
def test_sbi_responder_prints_and_answers_identity(clock):
    r = SbiResponder(model(clock, mass_g=12.5, decimals=2))
    assert r.feed(sbi.PRINT) == [b"+    12.50 g  \r\n"]
    # Serial and software as a Cubis prints them: 6-character label, value right aligned.
    assert r.feed(sbi.MODEL + sbi.SERIAL + sbi.SOFTWARE) == [
        b"SIM220-1S\r\n",
        b"SerNo.    0037454321\r\n",
        b"BAC:        00-37-09\r\n",
    ]
    assert r.feed(sbi.TARE) == []  # SBI acknowledges nothing
    assert r.feed(b"\x1bP")[0].endswith(b"    \r\n")  # unstable right after: no unit
    clock.t += 1.1
    assert r.feed(b"\x1bP") == [b"+     0.00 g  \r\n"]


def test_sbi_responder_22_characters_and_special_lines(clock):
    m = model(clock, mass_g=12.5, decimals=2, capacity_g=100.0)
    r = SbiResponder(m, ident=True)
    assert r.feed(sbi.PRINT) == [b"N     +    12.50 g  \r\n"]
    m.place(500.0)
    assert sbi.parse_line(r.feed(sbi.PRINT)[0]).overload
    m.place(12.5)
    m.set_pan(present=False)
    assert sbi.parse_line(r.feed(sbi.PRINT)[0]).underload


def test_sbi_responder_handles_commands_split_across_reads(clock):
    r = SbiResponder(model(clock))
    assert r.feed(b"\x1b") == []
    assert len(r.feed(b"P\r\n")) == 1


def _ask(r, opcode, args=b""):
    [raw] = r.feed(xbpi.encode_request(opcode, args))
    return xbpi.decode_reply(raw)


def test_xbpi_responder(clock):
    m = model(clock, mass_g=30.0, capacity_g=100.0)
    r = XbpiResponder(m)
    reply = _ask(r, xbpi.OP_READ_NET)
    got = xbpi.decode_measurement(reply.body)
    assert (got.value, got.unit, got.stable) == (30.0, "g", True)
    assert _ask(r, xbpi.OP_ZERO).error_code == 0x06  # outside the zero range
    assert _ask(r, xbpi.OP_TARE).raw == bytes.fromhex("03 41 00 44")  # the captured ACK
    assert _ask(r, 0x8F).error_code == 0x04  # unknown opcode
    assert _ask(r, xbpi.OP_START_ADJUSTMENT).error_code == 0x07  # missing argument
    assert xbpi.decode_factory_number(_ask(r, xbpi.OP_READ_FACTORY_NUMBER).body) == "0037454321"
    assert xbpi.decode_software(_ask(r, xbpi.OP_READ_SOFTWARE).body) == "00-37-09"
    assert xbpi.decode_text(_ask(r, xbpi.OP_READ_MODEL).body) == "SIM220-1S"
    assert _ask(r, xbpi.OP_READ_SBN).raw == bytes.fromhex("04 41 21 00 66")  # captured: SBN 0
    clock.t += 5  # the tare has settled
    assert xbpi.decode_measurement(_ask(r, xbpi.OP_READ_GROSS).body).value == 30.0


def test_xbpi_responder_ignores_bad_checksum_and_other_nodes(clock):
    r = XbpiResponder(model(clock), sbn=0)
    bad = bytearray(xbpi.encode_request(xbpi.OP_READ_NET))
    bad[-1] ^= 0xFF
    assert r.feed(bytes(bad)) == []
    assert r.feed(xbpi.encode_request(xbpi.OP_READ_NET, dst=2)) == []
    assert len(r.feed(xbpi.encode_request(xbpi.OP_READ_NET, dst=0))) == 1  # its own SBN
    assert len(r.feed(xbpi.encode_request(xbpi.OP_READ_NET, dst=9))) == 1  # factory address


@pytest.mark.parametrize(("load", "state"), [(150.0, 0x82), (None, 0x84)])
def test_xbpi_off_scale_reading_and_status_block(clock, load, state):
    m = model(clock, capacity_g=100.0)
    if load is None:
        m.set_pan(present=False)
    else:
        m.place(load)
    clock.t += 1
    r = XbpiResponder(m)
    assert xbpi.decode_measurement(_ask(r, xbpi.OP_READ_NET).body).off_scale
    assert xbpi.decode_status_block(_ask(r, xbpi.OP_READ_STATUS_BLOCK).body).state == state
    reading = xbpi.reading_from_measurement(
        xbpi.decode_measurement(_ask(r, xbpi.OP_READ_NET).body),
        xbpi.decode_status_block(_ask(r, xbpi.OP_READ_STATUS_BLOCK).body),
    )
    assert math.isnan(reading.value)
    assert reading.overload is (load is not None)
