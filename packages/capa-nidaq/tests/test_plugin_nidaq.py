import importlib.metadata as md

import capa_nidaq
from capa import PluginHost
from capa.plugins.registry import PluginStatus


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "nidaq"]
    assert [ep.value for ep in eps] == ["capa_nidaq.plugin"]
    assert md.version("capa-nidaq") == capa_nidaq.__version__


def test_plugin_loads_through_the_host():
    host = PluginHost()
    host.load()
    record = host.plugins["nidaq"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-nidaq"
    assert not host.rejections_for("nidaq")
