import importlib.metadata as md

import capa_camera
from capa import PluginHost
from capa.plugins.registry import PluginStatus


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "camera"]
    assert [ep.value for ep in eps] == ["capa_camera.plugin"]
    assert md.version("capa-camera") == capa_camera.__version__


def test_plugin_loads_through_the_host():
    host = PluginHost()
    host.load()
    record = host.plugins["camera"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-camera"
    assert not host.rejections_for("camera")
