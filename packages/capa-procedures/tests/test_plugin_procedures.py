import importlib.metadata as md

import capa_procedures
from capa import PluginHost
from capa.plugins.registry import PluginStatus


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "procedures"]
    assert [ep.value for ep in eps] == ["capa_procedures.plugin"]
    assert md.version("capa-procedures") == capa_procedures.__version__


def test_plugin_loads_through_the_host():
    host = PluginHost()
    host.load()
    record = host.plugins["procedures"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-procedures"
    assert not host.rejections_for("procedures")
