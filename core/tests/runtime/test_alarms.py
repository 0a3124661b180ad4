"""Alarm and interlock state machines, sample by sample."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from capa.config.safety import AlarmConfig, InterlockConfig
from capa.runtime.alarms import AlarmState, InterlockState

S = 1_000_000_000


def feed(state, values, t0=0, dt_s=0.1):
    t = t0 + (np.arange(len(values)) * dt_s * S).astype(np.int64)
    return [(x.raised, x.reason, x.value) for x in state.update(t, np.asarray(values, float))]


def test_high_limit_with_hysteresis():
    a = AlarmState(AlarmConfig(name="hot", channel="t", high=100, hysteresis=5))
    assert feed(a, [90, 99, 100]) == []
    assert feed(a, [101, 104, 98], t0=S) == [(True, "high", 101.0)]
    assert a.raised == "high"
    assert feed(a, [96, 94.9], t0=2 * S) == [(False, "high", 94.9)]
    assert a.raised is None


def test_low_limit_and_min_duration():
    a = AlarmState(AlarmConfig(name="cold", channel="t", low=10, min_duration_s=0.25))
    # below for 0.2 s only: nothing
    assert feed(a, [9, 9, 9, 11]) == []
    # below for 0.3 s: raised at the sample that completes 0.25 s
    got = feed(a, [9, 9, 9, 9, 9], t0=S)
    assert got == [(True, "low", 9.0)]


def test_rate_of_change():
    a = AlarmState(AlarmConfig(name="fast", channel="t", rate_max_per_s=10))
    assert feed(a, [0, 0.5, 1.0]) == []  # 5 per second
    got = feed(a, [3.0, 3.1], t0=int(0.3 * S))  # 1.0 -> 3.0 in 0.1 s = 20/s
    assert [g[:2] for g in got] == [(True, "rate"), (False, "rate")]
    assert got[0][2] == pytest.approx(20.0)
    assert got[1][2] == pytest.approx(1.0)  # 3.0 -> 3.1 in 0.1 s: back under the limit
    assert feed(a, [3.2], t0=int(0.5 * S)) == []


def test_quiet_batches_take_the_vectorised_path_and_transitions_are_exact():
    a = AlarmState(AlarmConfig(name="hot", channel="t", high=1.0))
    x = np.sin(np.linspace(0, 20 * np.pi, 100_000)) * 0.5
    assert feed(a, x, dt_s=1e-4) == []
    x[70_000] = 2.0
    got = feed(a, x, t0=20 * S, dt_s=1e-4)
    assert got == [(True, "high", 2.0), (False, "high", pytest.approx(x[70_001]))]


def test_stale():
    a = AlarmState(AlarmConfig(name="quiet", channel="t", stale_s=2))
    a.arm(0)
    assert a.check_stale(int(1.5 * S)) == []
    raised = a.check_stale(int(2.5 * S))
    assert [(x.raised, x.reason) for x in raised] == [(True, "stale")]
    assert a.check_stale(3 * S) == []  # raised once
    assert feed(a, [1.0], t0=4 * S) == [(False, "stale", 0.0)]


def test_alarm_config_needs_a_condition_and_ordered_limits():
    with pytest.raises(ValidationError, match="needs high, low"):
        AlarmConfig(name="x", channel="t")
    with pytest.raises(ValidationError, match="must be below"):
        AlarmConfig(name="x", channel="t", high=1, low=2)
    with pytest.raises(ValidationError):
        AlarmConfig(name="x", channel="t", high=1, action="explode")


def test_interlock_limits_and_rate():
    lock = InterlockState(InterlockConfig(channel="sp", max=900, min=0, max_rate_per_min=60))
    assert lock.check(950, 0) is not None
    assert "exceeds the interlock maximum 900" in lock.check(950, 0)
    assert "below the interlock minimum" in lock.check(-1, 0)
    assert "not a finite" in lock.check(float("nan"), 0)
    # first write: the rate reference is the current reading
    assert lock.check(30, 0, current=25) is not None  # a jump, no time elapsed
    assert lock.check(25, 0, current=25) is None
    lock.accepted(25, 0)
    assert lock.check(26, S) is None  # 1 per second = 60 per minute: at the limit
    assert "exceeds the interlock rate" in lock.check(28, S)
    with pytest.raises(ValidationError, match="needs max"):
        InterlockConfig(channel="sp")
