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
    m = model(clock, mass_g=30.0, capacity_g=100.0)
    assert m.zero() is not None  # 30 g is outside the 2 g zero range
    assert m.tare() is None
    assert m.state().net_g == pytest.approx(0.0)
    m.place(31.0)
    clock.t += 1
    assert m.state().net_g == pytest.approx(1.0)
    m.place(1.0)
    clock.t += 1
    assert m.zero() is None  # within the zero range: gross becomes 0, tare cleared
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


def test_noise_is_seeded(clock):
    a = model(clock, noise_g=0.01, seed=7)
    b = model(clock, noise_g=0.01, seed=7)
    assert [a.state().net_g for _ in range(5)] == [b.state().net_g for _ in range(5)]


# ------------------------------------------------------------------ responders
def test_sbi_responder_prints_and_answers_identity(clock):
    r = SbiResponder(model(clock, mass_g=12.5, decimals=2))
    assert r.feed(sbi.PRINT) == [b"+    12.50 g  \r\n"]
    assert r.feed(sbi.MODEL + sbi.SERIAL) == [b"SIM220-1S\r\n", b"0037454321\r\n"]
    assert r.feed(sbi.TARE) == []  # SBI acknowledges nothing
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


def test_xbpi_responder(clock):
    m = model(clock, mass_g=30.0, capacity_g=100.0)
    r = XbpiResponder(m, address=1)
    [raw] = r.feed(xbpi.encode_request(xbpi.CMD_READ_WEIGHT))
    reading = xbpi.reading_from_reply(xbpi.decode_reply(raw))
    assert (reading.value, reading.stable) == (30.0, True)
    [raw] = r.feed(xbpi.encode_request(xbpi.CMD_ZERO))
    assert xbpi.decode_reply(raw).error_code == xbpi.ERROR_NOT_POSSIBLE
    [raw] = r.feed(xbpi.encode_request(xbpi.CMD_TARE))
    assert xbpi.decode_reply(raw).ok
    [raw] = r.feed(xbpi.encode_request(0x77))
    assert xbpi.decode_reply(raw).error_code == xbpi.ERROR_UNKNOWN_COMMAND
    [raw] = r.feed(xbpi.encode_request(xbpi.CMD_READ_SERIAL))
    assert xbpi.decode_reply(raw).params == ("0037454321",)


def test_xbpi_responder_ignores_bad_checksum_and_other_addresses(clock):
    r = XbpiResponder(model(clock), address=1)
    bad = bytearray(xbpi.encode_request(xbpi.CMD_READ_WEIGHT))
    bad[-1] ^= 0xFF
    assert r.feed(bytes(bad)) == []
    assert r.feed(xbpi.encode_request(xbpi.CMD_READ_WEIGHT, address=2)) == []
    assert len(r.feed(xbpi.encode_request(xbpi.CMD_READ_WEIGHT, address=1))) == 1


def test_xbpi_overload_reply_has_the_flag(clock):
    m = model(clock, capacity_g=100.0)
    m.place(150.0)
    clock.t += 1
    [raw] = XbpiResponder(m).feed(xbpi.encode_request(xbpi.CMD_READ_WEIGHT))
    reading = xbpi.reading_from_reply(xbpi.decode_reply(raw))
    assert reading.overload
    assert math.isnan(reading.value)
