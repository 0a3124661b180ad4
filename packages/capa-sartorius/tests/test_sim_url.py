"""``sim://`` URLs and adapter params validation."""

import pydantic
import pytest

import capa
from capa_sartorius.params import BalanceParams
from capa_sartorius.sim import parse_sim_url


def test_full_query():
    spec = parse_sim_url("sim://?seed=1&mass_g=50&loss_g_per_s=0.01&protocol=sbi&autoprint=1")
    assert spec.config.seed == 1
    assert spec.config.mass_g == 50.0
    assert spec.config.loss_g_per_s == 0.01
    assert spec.protocol == "sbi"
    assert spec.autoprint is True
    assert spec.autoprint_hz is None


def test_bare_url_uses_defaults():
    spec = parse_sim_url("sim://")
    assert spec.protocol is None
    assert spec.autoprint is None
    assert spec.config.capacity_g == 220.0


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sim://?bogus=1", "unknown sim:// option 'bogus'"),
        ("sim://?mass_g=heavy", "mass_g"),
        ("sim://?protocol=modbus", "sbi or xbpi"),
        ("sim://?autoprint=maybe", "boolean"),
        ("sim://host/path", "only a query"),
        ("/dev/ttyUSB0", "not a sim://"),
    ],
)
def test_bad_urls_are_config_errors(url, match):
    with pytest.raises(capa.ConfigError, match=match):
        parse_sim_url(url)


def test_params_defaults_are_sartorius_factory_settings():
    p = BalanceParams(port="/dev/ttyUSB0")
    assert (p.protocol, p.baudrate, p.data_bits, p.parity, p.stopbits) == ("sbi", 9600, 7, "odd", 1)
    assert BalanceParams(port="/dev/ttyUSB0", protocol="xbpi").data_bits == 8
    assert BalanceParams(port="x", protocol="xbpi", bytesize=7).data_bits == 7


def test_params_reject_unknown_keys_and_autoprint_over_xbpi():
    with pytest.raises(pydantic.ValidationError, match="extra"):
        BalanceParams(port="x", baud=9600)
    with pytest.raises(pydantic.ValidationError, match="autoprint"):
        BalanceParams(port="x", protocol="xbpi", autoprint=True)
    with pytest.raises(pydantic.ValidationError):
        BalanceParams(port="x", rate_hz=0)
