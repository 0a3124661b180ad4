import importlib.metadata as md
import subprocess
import sys

import click

import capa_sartorius
from capa import PluginHost
from capa.testing import check_adapter
from capa_sartorius.adapter import SartoriusBalance
from capa_sartorius.params import BalanceParams


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "sartorius"]
    assert [ep.value for ep in eps] == ["capa_sartorius.plugin"]
    assert md.version("capa-sartorius") == capa_sartorius.__version__


def test_plugin_loads_through_the_host_with_the_adapter_accepted():
    host = PluginHost()
    host.load()
    record = host.plugins["sartorius"]
    assert record.status == "loaded", record.reason
    assert record.dist == "capa-sartorius"
    assert not host.rejections_for("sartorius")
    assert host.adapters.get("sartorius.balance") is SartoriusBalance


def test_plugin_adds_one_cli_group():
    host = PluginHost()
    host.load()
    group = click.Group("capa")
    host.register_cli(group)
    assert "sartorius" in group.commands
    assert host.plugins["sartorius"].commands == ["sartorius"]
    assert "sim" in group.commands["sartorius"].commands


def test_conformance():
    check_adapter(SartoriusBalance, BalanceParams(port="/dev/ttyUSB0"))
    check_adapter(SartoriusBalance, BalanceParams(port="sim://?mass_g=5", protocol="xbpi"))


def test_description_needs_no_io():
    params = BalanceParams(port="/dev/does-not-exist")
    assert SartoriusBalance.resource_id(params) == "serial:/dev/does-not-exist"
    fields = {f.name: f for f in SartoriusBalance.fields(params)}
    assert list(fields) == ["mass", "stable", "overload", "underload"]
    assert fields["mass"].unit == "g"
    assert SartoriusBalance.writable_fields(params) == frozenset()
    assert "has_tare" in SartoriusBalance.capabilities
    adapter = SartoriusBalance("b", BalanceParams(port="x", rate_hz=4))
    assert adapter.poll_interval_s() == 0.25


def test_plugin_module_does_not_import_pyserial_or_the_adapter():
    code = (
        "import sys, capa_sartorius.plugin; "
        "print(sorted(m for m in ('serial', 'capa_sartorius.adapter') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
