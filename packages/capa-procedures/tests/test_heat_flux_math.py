"""The heat-flux tune's steady-state predicate, secant update and TOML writer."""

from __future__ import annotations

import tomllib

import pytest

from capa_procedures.heat_flux.artifact import dumps_toml
from capa_procedures.heat_flux.secant import Point, next_setpoint
from capa_procedures.heat_flux.steady import SteadyWindow, robust_spread, slope


def _window(**kw):
    args = {"window_s": 1.0, "dwell_s": 0.5, "pv_band": 1.0, "spread_cap": 0.2, "slope_cap": 0.1}
    return SteadyWindow(**{**args, **kw})


def _feed(w, t0, t1, flux, pv=100.0, dt=0.05):
    t = t0
    while t <= t1 + 1e-9:
        w.add_flux(t, flux(t))
        w.add_pv(t, pv)
        t += dt


def test_steady_needs_a_full_window_then_the_dwell():
    w = _window()
    w.reset(0.0)
    _feed(w, 0.0, 0.5, lambda t: 5.0)
    assert not w.steady_now(0.5)  # window not yet covered
    _feed(w, 0.55, 1.0, lambda t: 5.0)
    assert w.steady_now(1.0)
    assert w.accepted(1.0) is None  # steady, dwell starts
    _feed(w, 1.05, 1.5, lambda t: 5.0)
    m = w.accepted(1.5)
    assert m is not None
    assert m.flux_mean == pytest.approx(5.0)
    assert m.flux_slope == pytest.approx(0.0)


def test_drifting_flux_or_wandering_pv_is_not_steady():
    w = _window()
    w.reset(0.0)
    _feed(w, 0.0, 1.0, lambda t: 5.0 + 0.5 * t)  # slope 0.5 > cap 0.1
    assert not w.steady_now(1.0)
    w.reset(2.0)
    _feed(w, 2.0, 3.0, lambda t: 5.0)
    w.add_pv(3.0, 103.0)  # PV leaves its band
    assert not w.steady_now(3.0)


def test_dwell_restarts_when_steadiness_breaks():
    w = _window(dwell_s=0.3)
    w.reset(0.0)
    _feed(w, 0.0, 1.0, lambda t: 5.0)
    assert w.accepted(1.0) is None
    w.add_flux(1.1, 9.0)
    w.add_flux(1.15, 1.0)
    w.add_flux(1.2, 9.0)
    w.add_flux(1.25, 1.0)
    assert w.accepted(1.25) is None  # spread too large: dwell reset


def test_robust_spread_ignores_a_spike_and_slope_is_least_squares():
    assert robust_spread([1.0, 1.0, 1.0, 1.0, 50.0]) == 0.0
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)


def test_secant_step_is_damped_clamped_and_limited():
    # Linear plant flux = 0.1 * sp: the secant finds the gain exactly.
    pts = [Point(50, 5.0), Point(60, 6.0)]
    sp, gain = next_setpoint(pts, 10.0, damping=0.5, max_step=100, floor=0, ceiling=500)
    assert gain == pytest.approx(0.1)
    assert sp == pytest.approx(60 + 0.5 * 40)
    sp, _ = next_setpoint(pts, 10.0, damping=1.0, max_step=15, floor=0, ceiling=500)
    assert sp == 75  # clamped to max_step
    sp, _ = next_setpoint(pts, 10.0, damping=1.0, max_step=100, floor=0, ceiling=80)
    assert sp == 80  # ceiling
    # One point: flux / setpoint as the first gain estimate (or initial_gain when given).
    sp, gain = next_setpoint([Point(50, 2.5)], 5.0, damping=1, max_step=100, floor=0, ceiling=500)
    assert (sp, gain) == (100, 0.05)
    sp, _ = next_setpoint(
        [Point(50, 2.5)], 5.0, damping=1, max_step=100, floor=0, ceiling=500, initial_gain=0.1
    )
    assert sp == 75
    # No usable gain at all: step by max_step toward the target.
    sp, _ = next_setpoint([Point(0, 0.0)], 5.0, damping=1, max_step=10, floor=0, ceiling=500)
    assert sp == 10


def test_toml_writer_round_trips():
    text = dumps_toml(
        "comment",
        {"tune": {"rig": 'a "quoted" rig', "complete": True, "n": 3, "skip": None}},
        {"points": [{"setpoint": 70.5, "reason": "ok"}, {"setpoint": 120.0, "reason": "ok"}]},
    )
    data = tomllib.loads(text)
    assert data["tune"] == {"rig": 'a "quoted" rig', "complete": True, "n": 3}
    assert [p["setpoint"] for p in data["points"]] == [70.5, 120.0]
