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


def test_loop_two_registers_follow_the_pm_map():
    # PM register map: loop 2 PV 440, set point 2240, heat power 1974 (not 450 / 2230).
    assert by_name("process_value").register_for(2) == 440
    assert by_name("setpoint").register_for(2) == 2240
    assert by_name("output_power").register_for(2) == 1974
    with pytest.raises(ValueError, match="instance"):
        by_name("hardware_id").register_for(2)
    with pytest.raises(ValueError, match="instance 3"):  # a PM has two loops
        by_name("process_value").register_for(3)


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="process_value"):
        by_name("nope")
