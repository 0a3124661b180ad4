"""Temperature conversion and the documented parameter/register numbers."""

import pytest

from capa_watlow.params import by_id, by_name
from capa_watlow.units import convert_temperature


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [(212.0, "degF", "degC", 100.0), (100.0, "degC", "degF", 212.0), (0.0, "degC", "K", 273.15),
     (-40.0, "degF", "degC", -40.0), (373.15, "K", "degF", 212.0), (21.5, "degC", "degC", 21.5)],
)  # fmt: skip
def test_convert_temperature(value, src, dst, expected):
    assert convert_temperature(value, src, dst) == pytest.approx(expected)


def test_documented_parameter_numbers():
    pv, sp, power = by_name("process_value"), by_name("setpoint"), by_name("output_power")
    assert (pv.param_id, pv.register) == (4001, 360)
    assert (sp.param_id, sp.register, sp.writable) == (7001, 2160, True)
    assert (power.param_id, power.register, power.unit) == (8011, 1904, "%")
    assert (pv.param_class, pv.member) == (4, 1)
    assert by_id(7001) is sp


def test_instances_use_the_stride():
    assert by_name("setpoint").register_for(2) == 2160 + 70
    assert by_name("process_value").register_for(2) == 360 + 90
    with pytest.raises(ValueError, match="instance"):
        by_name("hardware_id").register_for(2)


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="process_value"):
        by_name("nope")
