import importlib.metadata as md
import subprocess
import sys

import click
from click.testing import CliRunner

import capa_watlow
from capa import PluginHost
from capa.plugins.registry import PluginStatus
from capa.testing import check_adapter
from capa_watlow import plugin
from capa_watlow.adapter import EzZonePM


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "watlow"]
    assert [ep.value for ep in eps] == ["capa_watlow.plugin"]
    assert md.version("capa-watlow") == capa_watlow.__version__


def test_plugin_loads_through_the_host_with_the_adapter_accepted():
    host = PluginHost()
    host.load()
    record = host.plugins["watlow"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-watlow"
    assert not host.rejections_for("watlow")
    assert host.adapters.get("watlow.ezzone_pm") is EzZonePM


def test_adapter_passes_the_conformance_checks():
    check_adapter(EzZonePM)
    check_adapter(EzZonePM, EzZonePM.Params(port="/dev/ttyUSB0", instances=(1, 2)))
    check_adapter(EzZonePM, EzZonePM.Params(port="sim://?addresses=1,2"))


def test_cli_hook_adds_one_watlow_group():
    group = click.Group("capa")
    plugin.capa_register_cli(group)
    assert list(group.commands) == ["watlow"]
    result = CliRunner().invoke(group, ["watlow", "sim", "--help"])
    assert result.exit_code == 0
    assert "--pty" in result.output


def test_importing_the_plugin_module_loads_no_serial_library():
    code = (
        "import sys, capa_watlow.plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('serial', 'pymodbus', 'capa_watlow') ))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['capa_watlow', 'capa_watlow.plugin']"
