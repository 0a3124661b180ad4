"""Every injected fault is recorded (comm_error tick + event) and recovered from."""

import pytest

import capa
from capa_sartorius.sim import Fault

PROTOCOLS = ["sbi", "xbpi"]
SIMPLE_FAULTS = [Fault.NO_REPLY, Fault.GARBLE, Fault.SLOW]
# Generous: a loaded CI machine must not turn a good reply into a timeout.
TIMEOUT_S = 0.5
EVENT_FOR = {Fault.NO_REPLY: "timeout", Fault.GARBLE: "garbled", Fault.SLOW: "timeout"}


def status(h, emissions):
    return h.batch_of(emissions).status["mass"][0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", SIMPLE_FAULTS)
def test_fault_gives_a_comm_error_tick_then_sampling_resumes(
    h, make_sim, make_adapter, protocol, fault
):
    sim = make_sim(protocol, mass_g=33.0)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.inject(fault, delay_s=2 * TIMEOUT_S)
    failed = h.arun(adapter.read)
    batch = h.batch_of(failed)
    assert batch.status == {
        "mass": ["comm_error"],
        "stable": ["comm_error"],
        "overload": ["comm_error"],
        "underload": ["comm_error"],
    }
    [event] = h.events_of(failed)
    assert event.kind == f"sartorius.{EVENT_FOR[fault]}"
    assert event.severity is capa.EventSeverity.WARNING
    assert event.metadata["protocol"] == protocol
    assert h.records_of(failed).columns["comm_error"] == [EVENT_FOR[fault]]
    # The port was reopened; the next good tick says so and carries the right value.
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(33.0)
    kinds = [e.kind for t in ticks for e in h.events_of(t)]
    assert "sartorius.reconnected" in kinds


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", [Fault.NO_REPLY, Fault.GARBLE])
def test_a_retry_recovers_within_the_tick(h, make_sim, make_adapter, protocol, fault):
    sim = make_sim(protocol, mass_g=12.0)
    adapter = make_adapter(sim.path, protocol, retries=1, timeout_s=TIMEOUT_S)
    sim.inject(fault)
    emissions = h.arun(adapter.read)
    assert status(h, emissions) == "ok", h.events_of(emissions)
    assert h.batch_of(emissions).values["mass"][0] == pytest.approx(12.0)
    kinds = [e.kind for e in h.events_of(emissions)]
    assert kinds == [f"sartorius.{EVENT_FOR[fault]}", "sartorius.reconnected"]
    assert h.events_of(emissions)[0].metadata["attempt"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_disconnect_is_survived(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=21.0, downtime_s=0.3)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.inject(Fault.DISCONNECT)
    failed = h.arun(adapter.read)
    assert status(h, failed) == "comm_error"
    # Under load the failed tick may be a timeout that beat the disconnect itself; wait for
    # a good tick on the *new* pty (the port really went away and came back).
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok" and sim.connections == 2)
    kinds = {e.kind for t in [failed, *ticks] for e in h.events_of(t)}
    assert "sartorius.reconnected" in kinds
    assert kinds & {"sartorius.disconnected", "sartorius.timeout", "sartorius.open_failed"}
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(21.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconnect_after_the_simulator_restarts(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol, mass_g=64.0)
    adapter = make_adapter(sim.path, protocol, retries=0, timeout_s=TIMEOUT_S)
    assert status(h, h.arun(adapter.read)) == "ok"
    sim.stop()
    down = h.arun(adapter.read)
    assert status(h, down) == "comm_error"
    down_again = h.arun(adapter.read)  # the port is gone: reopening fails, still no raise
    assert status(h, down_again) == "comm_error"
    assert [e.kind for e in h.events_of(down_again)] == ["sartorius.open_failed"]
    sim.start()
    up = h.arun(adapter.read)
    assert status(h, up) == "ok"
    assert h.batch_of(up).values["mass"][0] == pytest.approx(64.0)
    assert [e.kind for e in h.events_of(up)] == ["sartorius.reconnected"]


def test_sim_url_simulator_restart_is_followed(h, make_adapter):
    adapter = make_adapter("sim://?mass_g=5", "xbpi", retries=0, timeout_s=TIMEOUT_S)
    first_device = adapter.simulator.device
    assert status(h, h.arun(adapter.read)) == "ok"
    adapter.simulator.restart()  # a new pty: the adapter asks the simulator where it is now
    assert adapter.simulator.device != first_device or adapter.simulator.connections == 2
    ticks = h.read_until(adapter, lambda e: status(h, e) == "ok")
    assert h.batch_of(ticks[-1]).values["mass"][0] == pytest.approx(5.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_command_on_a_dead_port_is_refused_not_raised(h, make_sim, make_adapter, protocol):
    sim = make_sim(protocol)
    adapter = make_adapter(sim.path, protocol, timeout_s=TIMEOUT_S)
    sim.stop()
    result = h.arun(adapter.command, capa.Command("tare"))
    # SBI may still write into the dead pty; either way nothing raises.
    if protocol == "xbpi":
        assert not result.accepted
    result = h.arun(adapter.command, capa.Command("zero"))
    assert not result.accepted
    assert "open_failed" in result.detail or "disconnected" in result.detail


def test_command_during_a_no_reply_fault(h, make_sim, make_adapter):
    sim = make_sim("xbpi")
    adapter = make_adapter(sim.path, "xbpi", timeout_s=TIMEOUT_S)
    sim.inject(Fault.NO_REPLY)
    result = h.arun(adapter.command, capa.Command("tare"))
    assert not result.accepted
    assert "timeout" in result.detail
    assert h.arun(adapter.command, capa.Command("tare")).accepted


def test_autoprint_stream_resumes_after_the_simulator_restarts(h, make_sim, make_adapter):
    sim = make_sim("sbi", mass_g=9.0, autoprint_hz=50.0)
    adapter = make_adapter(sim.path, "sbi", autoprint=True, timeout_s=TIMEOUT_S)
    h.read_until(adapter, lambda e: status(h, e) == "ok")
    sim.stop()
    down = h.read_until(adapter, lambda e: "comm_error" in h.batch_of(e).status["mass"])
    assert h.events_of(down[-1])
    sim.start()
    ticks = h.read_until(adapter, lambda e: h.batch_of(e).status["mass"][-1] == "ok")
    assert "sartorius.reconnected" in [e.kind for t in ticks for e in h.events_of(t)]
    assert h.batch_of(ticks[-1]).values["mass"][-1] == pytest.approx(9.0)


def test_simulator_leaves_no_thread_or_fd_behind(make_sim):
    import os
    import threading

    before_fds = set(os.listdir("/proc/self/fd"))
    before_threads = threading.active_count()
    sim = make_sim("xbpi")
    sim.restart()
    sim.stop()
    assert threading.active_count() == before_threads
    assert set(os.listdir("/proc/self/fd")) == before_fds
