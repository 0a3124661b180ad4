import importlib.metadata as md

import capa_sartorius
from capa import PluginHost
from capa.plugins.registry import PluginStatus


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "sartorius"]
    assert [ep.value for ep in eps] == ["capa_sartorius.plugin"]
    assert md.version("capa-sartorius") == capa_sartorius.__version__


def test_plugin_loads_through_the_host():
    host = PluginHost()
    host.load()
    record = host.plugins["sartorius"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-sartorius"
    assert not host.rejections_for("sartorius")
