"""The real adapter against the simulator over a real pseudo-terminal, both protocols."""

import math
import time

import pytest

import capa

PROTOCOLS = ["sbi", "xbpi"]


def ok_tick(h):
    def check(emissions):
        return h.batch_of(emissions).status["mass"][-1] == "ok"

    return check


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_polled_read(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=50.0)
    adapter = make_adapter(sim.path, protocol)
    emissions = h.arun(adapter.read)
    batch = h.batch_of(emissions)
    assert len(batch) == 1
    assert batch.values["mass"][0] == pytest.approx(50.0)
    assert batch.values["stable"] == [1.0]
    assert batch.values["overload"] == [0.0]
    assert batch.values["underload"] == [0.0]
    assert batch.status["mass"] == ["ok"]
    records = h.records_of(emissions)
    assert records.family == "sartorius"
    cols = records.columns
    assert cols["t_request_ns"][0] <= cols["t_receive_ns"][0] == batch.t_mono_ns[0]
    assert cols["t_mono_ns"] == batch.t_mono_ns  # the join key of every records table
    assert isinstance(cols["raw"][0], bytes)
    assert cols["raw"][0]  # the bytes the balance sent
    assert cols["unit"] == ["g"]
    assert h.events_of(emissions) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_specimen_losing_mass_is_followed(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=50.0, loss_g_per_s=2.0)
    adapter = make_adapter(sim.path, protocol)
    first = h.batch_of(h.arun(adapter.read)).values["mass"][0]
    ticks = h.read_until(adapter, lambda e: h.batch_of(e).values["mass"][0] < first - 0.05)
    times = [h.batch_of(t).t_mono_ns[0] for t in ticks]
    assert times == sorted(times)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tare_then_reading_near_zero(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=80.0)
    adapter = make_adapter(sim.path, protocol)
    assert h.batch_of(h.arun(adapter.read)).values["mass"][0] == pytest.approx(80.0)
    result = h.arun(adapter.command, capa.Command("tare"))
    assert result.accepted, result.detail
    # SBI does not acknowledge: the command has reached the balance once a later print
    # (sent after it on the same wire) shows the effect.
    batch = h.batch_of(h.arun(adapter.read))
    assert batch.values["mass"][0] == pytest.approx(0.0, abs=1e-3)
    sim.model.place(85.0)
    h.read_until(adapter, ok_tick(h))
    assert h.batch_of(h.arun(adapter.read)).values["mass"][0] == pytest.approx(5.0, abs=1e-3)


def test_zero_refused_by_an_xbpi_balance_is_not_accepted(h, make_sim, make_adapter):
    sim = make_sim("xbpi", mass_g=80.0)
    adapter = make_adapter(sim.path, "xbpi")
    result = h.arun(adapter.command, capa.Command("zero"))
    assert not result.accepted
    assert "0x06" in result.detail  # the balance's "operation not applicable" code
    assert h.batch_of(h.arun(adapter.read)).values["mass"][0] == pytest.approx(80.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_zero_within_range(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=1.0)
    adapter = make_adapter(sim.path, protocol)
    assert h.arun(adapter.command, capa.Command("zero")).accepted
    assert h.batch_of(h.arun(adapter.read)).values["mass"][0] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_settling_reading_is_recorded_as_unstable(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=10.0, settle_s=0.5)
    adapter = make_adapter(sim.path, protocol)
    h.arun(adapter.read)  # learn the unit while stable
    sim.model.place(60.0)
    emissions = h.arun(adapter.read)
    batch = h.batch_of(emissions)
    assert batch.values["stable"] == [0.0]
    assert batch.status["mass"] == ["unstable"]
    assert not math.isnan(batch.values["mass"][0])  # recorded, with its value, not dropped
    assert h.records_of(emissions).columns["stable"] == [False]
    ticks = h.read_until(adapter, ok_tick(h))
    settled = h.batch_of(ticks[-1])
    assert settled.values["stable"] == [1.0]
    assert settled.values["mass"][0] == pytest.approx(60.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_overload_and_underload(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=10.0, capacity_g=100.0, settle_s=0.0)
    adapter = make_adapter(sim.path, protocol)
    sim.model.place(150.0)
    batch = h.batch_of(h.arun(adapter.read))
    assert batch.values["overload"] == [1.0]
    assert batch.values["underload"] == [0.0]
    assert batch.status["mass"] == ["overload"]
    assert math.isnan(batch.values["mass"][0])
    refused = h.arun(adapter.command, capa.Command("tare"))
    if protocol == "xbpi":
        assert not refused.accepted
    sim.model.place(10.0)
    sim.model.set_pan(present=False)
    batch = h.batch_of(h.arun(adapter.read))
    assert batch.values["underload"] == [1.0]
    assert batch.status["mass"] == ["underrange"]
    sim.model.set_pan(present=True)
    batch = h.batch_of(h.arun(adapter.read))
    assert batch.status["mass"] == ["ok"]
    assert batch.values["mass"][0] == pytest.approx(10.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_internal_adjust(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, adjust_s=0.5)
    adapter = make_adapter(sim.path, protocol)
    assert h.arun(adapter.command, capa.Command("internal_adjust")).accepted
    assert h.batch_of(h.arun(adapter.read)).status["mass"] == ["unstable"]
    if protocol == "xbpi":
        busy = h.arun(adapter.command, capa.Command("internal_adjust"))
        assert not busy.accepted
        assert "0x06" in busy.detail
    h.read_until(adapter, ok_tick(h))


def test_unknown_command_and_arguments_are_refused_not_raised(h, make_sim, make_adapter):
    sim = make_sim("sbi")
    adapter = make_adapter(sim.path, "sbi")
    r = h.arun(adapter.command, capa.Command("calibrate_with_feelings"))
    assert not r.accepted
    assert "unknown command" in r.detail
    r = h.arun(adapter.command, capa.Command("tare", {"value": 1}))
    assert not r.accepted


def test_22_character_lines_over_the_wire(h, make_sim, make_adapter):
    sim = make_sim("sbi", mass_g=12.0, ident=True)
    adapter = make_adapter(sim.path, "sbi")
    emissions = h.arun(adapter.read)
    assert h.batch_of(emissions).values["mass"][0] == pytest.approx(12.0)
    assert h.records_of(emissions).columns["ident"] == ["N"]


def test_autoprint_stream_is_drained(h, make_sim, make_adapter):
    sim = make_sim("sbi", mass_g=20.0, loss_g_per_s=1.0, autoprint_hz=50.0)
    adapter = make_adapter(sim.path, "sbi", autoprint=True, rate_hz=5.0)
    rows = []

    def tick_after_interval(emissions):
        # The runtime calls read() once per poll interval; lines pile up in between.
        time.sleep(adapter.poll_interval_s())
        return len(h.batch_of(emissions)) >= 3

    ticks = h.read_until(adapter, tick_after_interval)
    for emissions in ticks:
        batch = h.batch_of(emissions)
        rows += list(zip(batch.t_mono_ns, batch.values["mass"], strict=True))
        assert len(h.records_of(emissions).columns["raw"]) == len(batch)
    times = [t for t, _ in rows]
    assert times == sorted(times)
    masses = [m for _, m in rows]
    assert masses[-1] < masses[0]  # unprompted lines follow the specimen losing mass


def test_autoprint_garbled_line_is_a_comm_error_row_between_good_ones(h, make_sim, make_adapter):
    sim = make_sim("sbi", autoprint_hz=100.0)
    adapter = make_adapter(sim.path, "sbi", autoprint=True)
    h.arun(adapter.read)
    sim.inject("garbage")
    ticks = h.read_until(
        adapter, lambda e: any(k == "garbage" for k in h.records_of(e).columns["comm_error"])
    )
    batch = h.batch_of(ticks[-1])
    assert "comm_error" in batch.status["mass"]
    assert [e.kind for e in h.events_of(ticks[-1])] == ["sartorius.garbage"]
    h.read_until(adapter, ok_tick(h))


def test_sim_url_starts_the_simulator(h, make_adapter):
    adapter = make_adapter("sim://?seed=1&mass_g=42&loss_g_per_s=0.01&protocol=sbi")
    assert adapter.simulator is not None
    assert adapter.simulator.running
    assert h.batch_of(h.arun(adapter.read)).values["mass"][0] == pytest.approx(42.0, abs=0.05)
    assert type(adapter).resource_id(adapter.params) == (
        "serial:sim://?seed=1&mass_g=42&loss_g_per_s=0.01&protocol=sbi"
    )
    sim = adapter.simulator
    h.arun(adapter.close)
    assert not sim.running
    assert adapter.simulator is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sim_url_both_protocols_and_autoprint(h, make_adapter, protocol):
    autoprint = protocol == "sbi"
    adapter = make_adapter("sim://?mass_g=7&autoprint_hz=40", protocol, autoprint=autoprint)
    assert adapter.simulator.protocol == protocol
    assert adapter.simulator.autoprint_hz == (40.0 if autoprint else 0.0)
    batch = h.batch_of(h.arun(adapter.read))
    assert batch.values["mass"][-1] == pytest.approx(7.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("command", ["tare", "zero"])
def test_readings_settle_after_tare_and_zero(h, make_sim, make_adapter, protocol, command):
    # A balance is unstable for a moment after a tare / zero; the simulator used to stay
    # "stable" throughout.
    sim = make_sim(protocol, mass_g=1.0, tare_settle_s=0.6)
    adapter = make_adapter(sim.path, protocol)
    assert h.batch_of(h.arun(adapter.read)).status["mass"] == ["ok"]
    assert h.arun(adapter.command, capa.Command(command)).accepted
    right_after = h.batch_of(h.arun(adapter.read))
    assert right_after.status["mass"] == ["unstable"]
    assert right_after.values["stable"] == [0.0]
    ticks = h.read_until(adapter, ok_tick(h))
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(0.0, abs=1e-4)


def test_xbpi_gross_field(h, make_sim, make_adapter):
    from capa_sartorius.adapter import SartoriusBalance
    from capa_sartorius.params import BalanceParams

    sim = make_sim("xbpi", mass_g=40.0, tare_settle_s=0.2)
    adapter = make_adapter(sim.path, "xbpi", gross=True)
    params = BalanceParams(port=sim.path, protocol="xbpi", gross=True)
    assert "gross" in [f.name for f in SartoriusBalance.fields(params)]
    assert h.arun(adapter.command, capa.Command("tare")).accepted
    ticks = h.read_until(adapter, ok_tick(h))
    batch = h.batch_of(ticks[-1])
    assert batch.values["mass"][0] == pytest.approx(0.0, abs=1e-4)
    assert batch.values["gross"][0] == pytest.approx(40.0, abs=1e-4)
    assert batch.status["gross"] == ["ok"]
    with pytest.raises(ValueError, match="xBPI only"):
        BalanceParams(port="x", protocol="sbi", gross=True)


def test_xbpi_cell_busy_after_zero_is_unstable_not_a_failure(h, make_sim, make_adapter):
    sim = make_sim("xbpi", mass_g=0.5, zero_busy_s=0.5, tare_settle_s=0.1)
    adapter = make_adapter(sim.path, "xbpi")
    assert h.arun(adapter.command, capa.Command("zero")).accepted
    busy = h.batch_of(h.arun(adapter.read))
    assert math.isnan(busy.values["mass"][0])
    assert busy.status["mass"] == ["unstable"]
    assert (busy.values["overload"], busy.values["underload"]) == ([0.0], [0.0])
    ticks = h.read_until(adapter, ok_tick(h))
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_handshake_reads_identity(h, make_sim, protocol):
    from capa_sartorius.adapter import SartoriusBalance
    from capa_sartorius.params import BalanceParams

    sim = make_sim(protocol)
    result = h.arun(SartoriusBalance.handshake, BalanceParams(port=sim.path, protocol=protocol))
    assert result.ok, result.detail
    assert result.identity == {
        "model": "SIM220-1S",
        "serial": "0037454321",
        "software": "00-37-09",
        "protocol": protocol,
    }


def test_handshake_skips_autoprint_lines(h, make_sim):
    from capa_sartorius.adapter import SartoriusBalance
    from capa_sartorius.params import BalanceParams

    sim = make_sim("sbi", autoprint_hz=200.0)
    result = h.arun(SartoriusBalance.handshake, BalanceParams(port=sim.path))
    assert result.ok, result.detail
    assert result.identity["model"] == "SIM220-1S"


def test_handshake_on_a_missing_port_fails_cleanly(h, tmp_path):
    from capa_sartorius.adapter import SartoriusBalance
    from capa_sartorius.params import BalanceParams

    params = BalanceParams(port=str(tmp_path / "nothing"), timeout_s=0.1)
    result = h.arun(SartoriusBalance.handshake, params)
    assert not result.ok
    assert "cannot open" in result.detail


def test_handshake_with_the_wrong_protocol_fails(h, make_sim):
    from capa_sartorius.adapter import SartoriusBalance
    from capa_sartorius.params import BalanceParams

    sim = make_sim("xbpi")
    result = h.arun(SartoriusBalance.handshake, BalanceParams(port=sim.path, timeout_s=0.1))
    assert not result.ok


def test_discover_finds_each_balance_with_its_protocol(h, make_sim, monkeypatch, tmp_path):
    from capa_sartorius import discovery
    from capa_sartorius.adapter import SartoriusBalance

    sbi_sim = make_sim("sbi", name="a")
    xbpi_sim = make_sim("xbpi", name="b")
    monkeypatch.setattr(
        discovery, "candidate_ports", lambda: [sbi_sim.path, xbpi_sim.path, str(tmp_path / "x")]
    )
    found = h.arun(SartoriusBalance.discover)
    assert [(d.params["port"], d.params["protocol"]) for d in found] == [
        (sbi_sim.path, "sbi"),
        (xbpi_sim.path, "xbpi"),
    ]
    assert all(d.adapter == "sartorius.balance" for d in found)
    assert found[0].resource_id == f"serial:{sbi_sim.path}"
    assert "SIM220-1S" in found[0].description


def test_run_clock_stamps_after_start(h, make_sim, make_adapter):
    sim = make_sim("sbi")
    adapter = make_adapter(sim.path)

    class Ctx:
        device = "balance"
        clock = capa.RunClock()

        def emit(self, emission):  # pragma: no cover - polled adapter never emits
            raise AssertionError

    ctx = Ctx()
    h.arun(adapter.start, ctx)
    t = h.batch_of(h.arun(adapter.read)).t_mono_ns[0]
    assert 0 <= t <= ctx.clock.now_ns()
    snap = h.arun(adapter.snapshot)
    assert snap["connected"] is True
    assert snap["stable"] is True
