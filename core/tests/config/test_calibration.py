from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from capa.config.calibration import Calibration, CalibrationError
from capa.config.units import UnitError, canonical_unit, convert, is_convertible

CAL = TypeAdapter(Calibration)


def cal(**data):
    return CAL.validate_python(data)


def test_identity_is_the_default_shape_and_passes_values_through():
    c = cal(kind="identity")
    assert c.apply([1.5, -2]).tolist() == [1.5, -2.0]
    assert c.inverse(3).tolist() == 3.0
    assert c.invertible


def test_linear_direct_and_inverse_round_trip():
    c = cal(kind="linear", slope=2.0, intercept=1.0)
    raw = np.linspace(-10, 10, 1001)
    assert np.allclose(c.apply(raw), 2 * raw + 1)
    assert np.allclose(c.inverse(c.apply(raw)), raw)


def test_linear_two_point_form():
    c = cal(kind="linear", points=[[1.0, 0.0], [2.0, 100.0]])
    assert c.coefficients() == (100.0, -100.0)
    assert c.apply([1.5]).tolist() == [50.0]
    assert c.inverse(25.0) == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"kind": "linear"}, "needs slope"),
        ({"kind": "linear", "slope": 1, "points": [[0, 0], [1, 1]]}, "not both"),
        ({"kind": "linear", "points": [[1, 0], [1, 5]]}, "different raw values"),
        ({"kind": "linear", "slope": math.inf}, "finite"),
        ({"kind": "polynomial", "coefficients": []}, "at least 1"),
        ({"kind": "piecewise_linear", "points": [[0, 0], [0, 1]]}, "strictly increasing"),
        ({"kind": "piecewise_linear", "points": [[2, 0], [1, 1]]}, "strictly increasing"),
        ({"kind": "lookup", "table": [[0, 1], [-1, 2]]}, "strictly increasing"),
        ({"kind": "spline"}, "does not match any of the expected tags"),
        ({"kind": "linear", "slope": 1, "gain": 2}, "Extra inputs"),
    ],
)
def test_invalid_calibrations_are_refused(data, fragment):
    with pytest.raises(ValidationError) as info:
        cal(**data)
    assert fragment in str(info.value)


def test_linear_with_zero_slope_has_no_inverse():
    c = cal(kind="linear", slope=0.0, intercept=5.0)
    with pytest.raises(CalibrationError, match="slope 0"):
        c.inverse(5.0)


def test_polynomial_evaluates_vectorised_and_inverts_only_when_linear():
    c = cal(kind="polynomial", coefficients=[1.0, 0.5, 0.25])
    x = np.arange(5.0)
    assert np.allclose(c.apply(x), 1 + 0.5 * x + 0.25 * x**2)
    assert not c.invertible
    with pytest.raises(CalibrationError, match="degree 2 has no exact inverse"):
        c.inverse(2.0)
    line = cal(kind="polynomial", coefficients=[3.0, 2.0, 0.0])  # trailing zero: degree 1
    assert line.invertible
    assert line.inverse(7.0) == pytest.approx(2.0)


def test_piecewise_linear_interpolates_and_refuses_extrapolation():
    c = cal(kind="piecewise_linear", points=[[0, 0], [10, 100], [20, 150]])
    out = c.apply([-1, 0, 5, 15, 20, 21])
    assert np.isnan(out[0])
    assert np.isnan(out[-1])
    assert out[1:5].tolist() == [0.0, 50.0, 125.0, 150.0]
    assert c.inverse([50.0, 125.0]).tolist() == [5.0, 15.0]
    with pytest.raises(CalibrationError, match="outside the calibration table"):
        c.inverse(200.0)


def test_piecewise_linear_extrapolates_when_allowed():
    c = cal(kind="piecewise_linear", points=[[0, 0], [10, 100], [20, 150]], extrapolate=True)
    assert c.apply([-1, 22]).tolist() == [-10.0, 160.0]
    assert c.inverse(160.0) == pytest.approx(22.0)


def test_decreasing_table_inverts_and_non_monotonic_does_not():
    down = cal(kind="piecewise_linear", points=[[0, 10], [1, 5], [2, 0]])
    assert down.inverse([7.5, 2.5]).tolist() == [0.5, 1.5]
    bump = cal(kind="piecewise_linear", points=[[0, 0], [1, 5], [2, 0]])
    assert not bump.invertible
    with pytest.raises(CalibrationError, match="not monotonic"):
        bump.inverse(1.0)


def test_lookup_steps_and_has_no_inverse():
    c = cal(kind="lookup", table=[[0, 1.0], [10, 2.0], [20, 5.0]])
    assert np.isnan(c.apply([-0.5])[0])
    assert c.apply([0, 9.99, 10, 20]).tolist() == [1.0, 1.0, 2.0, 5.0]
    assert np.isnan(c.apply([20.5])[0])
    held = cal(kind="lookup", table=[[0, 1.0], [10, 2.0]], extrapolate=True)
    assert held.apply([1000]).tolist() == [2.0]
    bounded = cal(kind="lookup", table=[[0, 1.0], [10, 2.0]], upper=30)
    assert bounded.apply([29.9]).tolist() == [2.0]
    assert np.isnan(bounded.apply([30])[0])
    assert not c.invertible
    with pytest.raises(CalibrationError, match="no inverse"):
        c.inverse(1.0)


def test_calibration_of_a_large_block_is_one_array():
    c = cal(kind="piecewise_linear", points=[[0, 0], [1, 2]])
    raw = np.random.default_rng(1).random(1_000_000)
    out = c.apply(raw)
    assert out.shape == raw.shape
    assert np.allclose(out, 2 * raw)


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (100.0, "degC", "degF", 212.0),
        (32.0, "degF", "degC", 0.0),
        (0.0, "degC", "K", 273.15),
        (0.0, "K", "degF", -459.67),
        (-40.0, "°C", "fahrenheit", -40.0),
        (5.0, "V", "V", 5.0),
    ],
)
def test_temperature_units_convert(value, src, dst, expected):
    assert convert([value], src, dst)[0] == pytest.approx(expected)


def test_unconvertible_units():
    assert canonical_unit("°F") == "degF"
    assert is_convertible("K", "degF")
    assert not is_convertible("degC", "V")
    with pytest.raises(UnitError, match="cannot convert 'g' to 'kg'"):
        convert([1.0], "g", "kg")


def test_channel_converts_temperature_scales_then_calibrates_and_inverts():
    from capa.config.hardware import ChannelConfig

    channel = ChannelConfig.model_validate(
        {
            "name": "furnace",
            "kind": "temperature",
            "unit": "degC",
            "source": {"device": "d", "field": "pv"},
            "calibration": {"kind": "linear", "slope": 1.0, "intercept": -0.5},
        }
    )
    assert channel.value_unit == "degC"
    # the controller reports degF; the channel is calibrated in degC
    assert channel.to_value([212.0, 32.0], "degF").tolist() == pytest.approx([99.5, -0.5])
    assert channel.to_raw(99.5, "degF") == pytest.approx(212.0)
    assert channel.to_raw([10.0]).tolist() == [10.5]
    gauge = ChannelConfig.model_validate(
        {
            "name": "hf",
            "kind": "heat_flux",
            "unit": "mV",
            "derived_unit": "kW/m2",
            "source": {"device": "d", "field": "hf"},
            "calibration": {"kind": "polynomial", "coefficients": [0, 4, 0.1]},
        }
    )
    assert gauge.value_unit == "kW/m2"
    assert gauge.to_value([1.0], "mV").tolist() == [4.1]
    with pytest.raises(CalibrationError):
        gauge.to_raw(4.1)
    with pytest.raises(UnitError):
        gauge.to_value([1.0], "V")
