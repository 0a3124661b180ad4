"""Every fault, for each protocol: its own event kind, a comm_error row, and recovery.

Faults: no reply, garbage, bad checksum (xBPI; SBI lines carry none), late reply, port
killed mid-exchange, port killed while idle, device gone and back (reconnect with back-off).
"""

import time

import pytest

import capa
from capa_sartorius.adapter import RECONNECT_FIRST_S
from capa_sartorius.sim import Fault

PROTOCOLS = ["sbi", "xbpi"]
# Generous: a loaded CI machine must not turn a good reply into a timeout.
TIMEOUT_S = 0.5


def status(h, emissions):
    return h.batch_of(emissions).status["mass"][0]


def kinds(h, *ticks):
    return [e.kind for t in ticks for e in h.events_of(t)]


FAULTS = [
    ("sbi", Fault.NO_REPLY, "no_reply"),
    ("sbi", Fault.GARBAGE, "garbage"),
    ("xbpi", Fault.NO_REPLY, "no_reply"),
    ("xbpi", Fault.GARBAGE, "garbage"),
    ("xbpi", Fault.BAD_CHECKSUM, "bad_checksum"),
]


@pytest.mark.parametrize(("protocol", "fault", "kind"), FAULTS)
def test_fault_gives_its_own_event_and_a_comm_error_row(
    h, make_sim, make_adapter, protocol, fault, kind
):
    sim = make_sim(protocol, mass_g=33.0)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.inject(fault)
    failed = h.arun(adapter.read)
    batch = h.batch_of(failed)
    assert batch.status == {
        "mass": ["comm_error"],
        "stable": ["comm_error"],
        "overload": ["comm_error"],
        "underload": ["comm_error"],
    }
    [event] = h.events_of(failed)
    assert event.kind == f"sartorius.{kind}"
    assert event.severity is capa.EventSeverity.WARNING
    assert event.metadata["comm_error"] == kind
    assert event.metadata["protocol"] == protocol
    assert h.records_of(failed).columns["comm_error"] == [kind]
    # The port itself is fine: the next tick reads normally, no reconnect needed.
    ok = h.arun(adapter.read)
    assert status(h, ok) == "ok"
    assert h.batch_of(ok).values["mass"][0] == pytest.approx(33.0)
    assert kinds(h, ok) == []


def test_bad_checksum_cannot_be_injected_into_sbi(make_sim):
    sim = make_sim("sbi")
    with pytest.raises(ValueError, match="no checksum"):
        sim.inject(Fault.BAD_CHECKSUM)


@pytest.mark.parametrize(("protocol", "fault", "kind"), FAULTS)
def test_a_retry_recovers_within_the_tick(h, make_sim, make_adapter, protocol, fault, kind):
    sim = make_sim(protocol, mass_g=12.0)
    adapter = make_adapter(sim.path, protocol, retries=1, timeout_s=TIMEOUT_S)
    sim.inject(fault)
    emissions = h.arun(adapter.read)
    assert status(h, emissions) == "ok", h.events_of(emissions)
    assert h.batch_of(emissions).values["mass"][0] == pytest.approx(12.0)
    assert kinds(h, emissions) == [f"sartorius.{kind}"]
    assert h.events_of(emissions)[0].metadata["attempt"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_late_reply_is_a_no_reply_then_discarded_and_reported(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=7.0)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    sim.inject(Fault.LATE, delay_s=1.5 * TIMEOUT_S)
    first = h.arun(adapter.read)
    assert kinds(h, first) == ["sartorius.no_reply"]
    time.sleep(2 * TIMEOUT_S)  # the late reply has certainly arrived by now
    second = h.arun(adapter.read)
    assert status(h, second) == "ok"
    assert h.batch_of(second).values["mass"][0] == pytest.approx(7.0)
    [late] = h.events_of(second)
    assert late.kind == "sartorius.late_reply"
    assert late.metadata["raw"]  # the discarded bytes are kept in the event


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_port_killed_mid_exchange(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=21.0, downtime_s=0.3)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.inject(Fault.DISCONNECT)
    failed = h.arun(adapter.read)
    assert status(h, failed) == "comm_error"
    assert kinds(h, failed) == ["sartorius.port_lost_mid_exchange"]
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert sim.connections == 2  # the port really went away and came back
    assert "sartorius.reconnected" in kinds(h, *ticks)
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(21.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_port_killed_while_idle(h, make_sim, make_adapter, protocol):
    # The bug this guards: a port lost between polls made pyserial's reset_input_buffer()
    # raise termios.error, which crashed the run instead of being a comm_error.
    sim = make_sim(protocol, mass_g=4.0, downtime_s=0.3)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.drop_port()
    deadline = time.monotonic() + 2
    while sim.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the old pty is gone (a new one is open)
    failed = h.arun(adapter.read)
    assert status(h, failed) == "comm_error"
    [event] = h.events_of(failed)
    assert event.kind == "sartorius.port_lost_idle"
    assert event.metadata["comm_error"] == "port_lost_idle"
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert "sartorius.reconnected" in kinds(h, *ticks)
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(4.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_device_gone_then_back_reconnects_with_back_off(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=64.0)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.stop()
    lost = h.arun(adapter.read)
    assert status(h, lost) == "comm_error"
    assert kinds(h, lost)[0].startswith("sartorius.port_lost")
    first_reopen = h.arun(adapter.read)  # the first reopen attempt is immediate and fails
    assert kinds(h, first_reopen) == ["sartorius.open_failed"]
    assert h.events_of(first_reopen)[0].metadata["next_attempt_s"] == RECONNECT_FIRST_S
    waiting = h.arun(adapter.read)  # within the back-off: no attempt, no event, still a row
    assert status(h, waiting) == "comm_error"
    assert kinds(h, waiting) == []
    assert h.records_of(waiting).columns["comm_error"] == ["port_down"]
    time.sleep(RECONNECT_FIRST_S)
    second_reopen = h.arun(adapter.read)
    [event] = h.events_of(second_reopen)
    assert event.kind == "sartorius.open_failed"
    assert event.metadata["next_attempt_s"] == 2 * RECONNECT_FIRST_S  # the wait doubles
    sim.start()
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert "sartorius.reconnected" in kinds(h, *ticks)
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(64.0)


def test_sim_url_simulator_restart_is_followed(h, make_adapter):
    adapter = make_adapter("sim://?mass_g=5", "xbpi", retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    adapter.simulator.restart()  # a new pty: the adapter asks the simulator where it is now
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(5.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_command_on_a_dead_port_is_refused_not_raised(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol)
    adapter = make_adapter(sim.path, protocol, timeout_s=TIMEOUT_S)
    sim.stop()
    result = h.arun(adapter.command, capa.Command("zero"))
    assert not result.accepted
    assert "port_lost" in result.detail or "open_failed" in result.detail
    # The failure is also an event: it goes out with the next tick.
    nxt = h.arun(adapter.read)
    assert status(h, nxt) == "comm_error"
    assert kinds(h, nxt)[0] in ("sartorius.port_lost_idle", "sartorius.port_lost_mid_exchange")


def test_command_during_a_no_reply_fault(h, make_sim, make_adapter):
    sim = make_sim("xbpi")
    adapter = make_adapter(sim.path, "xbpi", timeout_s=TIMEOUT_S)
    sim.inject(Fault.NO_REPLY)
    result = h.arun(adapter.command, capa.Command("tare"))
    assert not result.accepted
    assert "no_reply" in result.detail
    assert h.arun(adapter.command, capa.Command("tare")).accepted
    assert kinds(h, h.arun(adapter.read)) == ["sartorius.no_reply"]


def test_autoprint_stream_resumes_after_the_simulator_restarts(h, make_sim, make_adapter):
    sim = make_sim("sbi", mass_g=9.0, autoprint_hz=50.0)
    adapter = make_adapter(sim.path, "sbi", autoprint=True, timeout_s=TIMEOUT_S)
    h.read_until(adapter, lambda e: status(h, e) == "ok")
    sim.stop()
    down = h.read_until(adapter, lambda e: "comm_error" in h.batch_of(e).status["mass"])
    assert h.events_of(down[-1])
    sim.start()
    ticks = h.read_until(adapter, lambda e: h.batch_of(e).status["mass"][-1] == "ok")
    assert "sartorius.reconnected" in kinds(h, *ticks)
    assert h.batch_of(ticks[-1]).values["mass"][-1] == pytest.approx(9.0)


def test_simulator_leaves_no_thread_or_fd_behind(make_sim):
    import os
    import threading

    before_fds = set(os.listdir("/proc/self/fd"))
    before_threads = threading.active_count()
    sim = make_sim("xbpi")
    sim.restart()
    sim.drop_port()
    sim.stop()
    assert threading.active_count() == before_threads
    assert set(os.listdir("/proc/self/fd")) == before_fds
