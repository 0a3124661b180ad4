"""Derived-channel expressions: the grammar, safety, units, window functions, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from capa.config.expressions import ExpressionError, parse_expression
from capa.config.validate import validate_hardware

from . import components as tc

UNITS = {"hf": "V", "t1": "degC", "t2": "°C", "mass": "g"}


def test_arithmetic_with_constants_is_vectorised():
    e = parse_expression(
        "gain * hf + offset", channels=UNITS, constants={"gain": 5000, "offset": 2}
    )
    assert e.inputs == ("hf",)
    assert e.unit is None  # a gain changes the unit: not checkable
    np.testing.assert_allclose(e.evaluate({"hf": np.array([0.001, 0.002])}), [7.0, 12.0])


def test_units_of_sums_and_mismatch():
    assert parse_expression("t1 - t2", channels=UNITS).unit == "degC"
    assert parse_expression("max(t1, t2) + 1", channels=UNITS).unit == "degC"
    assert parse_expression("abs(t1 - t2)", channels=UNITS).unit == "degC"
    with pytest.raises(ExpressionError, match="unit mismatch: degC \\+ g"):
        parse_expression("t1 + mass", channels=UNITS)
    with pytest.raises(ExpressionError, match="unit mismatch"):
        parse_expression("clip(t1, 0, mass)", channels=UNITS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "only plain calls"),
        ("hf.real", "Attribute is not allowed"),
        ("hf if hf else 1", "IfExp is not allowed"),
        ("(lambda: 1)()", "only plain calls"),
        ("[hf][0]", "Subscript is not allowed"),
        ("'text'", "only numbers are allowed"),
        ("hf == 1", "Compare is not allowed"),
        ("nope + 1", "unknown name 'nope'"),
        ("hf +", "not a valid expression"),
        ("movavg(hf + 1, 3)", "works on a channel name"),
        ("movavg(hf, 0)", "whole number of samples"),
        ("movavg(hf, 2.5)", "whole number of samples"),
        ("sqrt(hf, hf)", "takes 1 argument"),
        ("1e999", "finite"),
        ("+".join(["hf"] * 300), "too complex"),
        ("hf" + " " * 1000, "longer than"),
    ],
)
def test_everything_outside_the_grammar_is_refused(text, message):
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text, channels=UNITS)


def test_moving_average_and_delta_carry_state_across_batches():
    m = parse_expression("movavg(mass, 3)", channels=UNITS)
    assert m.stateful
    first = m.evaluate({"mass": np.arange(5.0)})
    second = m.evaluate({"mass": np.arange(5.0, 8.0)})
    np.testing.assert_allclose(first, [0, 0.5, 1, 2, 3])
    np.testing.assert_allclose(second, [4, 5, 6])
    d = parse_expression("delta(mass)", channels=UNITS)
    np.testing.assert_allclose(d.evaluate({"mass": np.array([1.0, 3.0, 6.0])}), [np.nan, 2, 3])
    np.testing.assert_allclose(d.evaluate({"mass": np.array([10.0])}), [4.0])
    d.reset()
    assert np.isnan(d.evaluate({"mass": np.array([1.0])})[0])


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    st.integers(1, 70),
    st.integers(1, 59),
)
def test_moving_average_matches_a_plain_loop_whatever_the_batching(values, n, cut):
    e = parse_expression("movavg(mass, n_)".replace("n_", str(n)), channels=UNITS)
    x = np.array(values)
    got = np.concatenate([e.evaluate({"mass": x[:cut]}), e.evaluate({"mass": x[cut:]})])
    want = [np.mean(x[max(0, i - n + 1) : i + 1]) for i in range(len(x))]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def _rig(tmp_path, derived: str):
    path = tmp_path / "rig.toml"
    path.write_text(tc.RIG + derived)
    return path


def codes(report):
    found = {}
    for p in report.problems:
        found.setdefault(p.code, []).append(p)
    return found


def test_hardware_validation_of_derived_channels(tmp_path, host):
    ok = _rig(
        tmp_path,
        '\n[[derived]]\nname = "rise"\nexpression = "heater_pv - heater_sp"\nunit = "degC"\n'
        '\n[[derived]]\nname = "smooth"\nexpression = "movavg(rise, 4)"\nunit = "degC"\n',
    )
    report = validate_hardware(ok, host)
    assert report.ok, report.problems
    assert list(report.hardware.derived) == ["rise", "smooth"]  # inputs first

    bad = _rig(
        tmp_path,
        '\n[[derived]]\nname = "x"\nexpression = "heater_pv + nope"\nunit = "degC"\n'
        '\n[[derived]]\nname = "k"\nexpression = "heater_pv - sample_t"\nunit = "g"\n'
        '\n[[derived]]\nname = "heater_pv"\nexpression = "1"\nunit = "degC"\n'
        '\n[[derived]]\nname = "c1"\nexpression = "c2 + 1"\nunit = "degC"\n'
        '\n[[derived]]\nname = "c2"\nexpression = "c1 + 1"\nunit = "degC"\n',
    )
    found = codes(validate_hardware(bad, host))
    unknown, mixed = found["derived.expression"]
    assert "unknown name 'nope'" in unknown.message
    assert unknown.path == "derived[0].expression"
    assert unknown.line is not None
    # degC and K are different labels: subtracting them is refused, not guessed
    assert "unit mismatch: degC - K" in mixed.message
    assert found["derived.duplicate_name"][0].path == "derived[2].name"
    assert "cycle" in found["derived.cycle"][0].message


def test_a_step_may_wait_on_but_not_write_a_derived_channel(tmp_path, host):
    tc.write_set(tmp_path)
    rig = tmp_path / "rig.toml"
    rig.write_text(
        rig.read_text()
        + '\n[[derived]]\nname = "rise"\nexpression = "heater_pv - heater_sp"\nunit = "degC"\n'
    )
    method = tmp_path / "soak.method.toml"
    method.write_text(method.read_text().replace('target = "sample_t"', 'target = "rise"'))
    from capa.config.validate import validate_experiment

    report = validate_experiment(tmp_path / "experiment.yaml", host)
    assert report.ok, report.problems
    method.write_text(method.read_text().replace('target = "heater_sp"', 'target = "rise"'))
    report = validate_experiment(tmp_path / "experiment.yaml", host)
    assert "step.target_not_writable" in codes(report)
