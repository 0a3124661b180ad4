"""PluginHost against real throwaway distributions discovered through entry points."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from capa import ComponentKind, PluginHost, UnknownComponentError
from capa.plugins.registry import PluginStatus
from capa.testing import make_distribution

from . import sample_plugins as sp


@pytest.fixture
def group() -> str:
    # A group of our own keeps the test independent of the plugins installed here.
    return f"capa_test_{uuid.uuid4().hex[:8]}"


def install(site: Path, group: str, dist: str, module: str, source: str, version="1.0"):
    make_distribution(
        site,
        dist,
        version,
        files={f"{module}.py": source},
        entry_points={group: {module.removesuffix("_plugin"): module}},
    )


def loaded_host(group: str) -> PluginHost:
    host = PluginHost(group=group)
    host.load()
    return host


def test_good_plugin_components_registered_with_provenance(capa_site, group):
    install(capa_site, group, "acme-capa", "acme_plugin", sp.GOOD, version="2.3.1")
    host = loaded_host(group)

    plugin = host.plugins["acme"]
    assert plugin.status is PluginStatus.LOADED
    assert (plugin.dist, plugin.version, plugin.entry_point) == (
        "acme-capa",
        "2.3.1",
        "acme_plugin",
    )
    assert sorted(plugin.components) == ["adapter:acme.thermo", "procedure:acme.soak", "step:beep"]

    rec = host.adapters.record("acme.thermo")
    assert (rec.dist, rec.version, rec.plugin) == ("acme-capa", "2.3.1", "acme")
    assert host.steps["beep"].kind == "beep"
    # A procedure that does not state its version gets its distribution's.
    assert host.procedures["acme.soak"].version == "2.3.1"
    assert host.rejections == []


def test_builtin_plugin_is_registered_through_the_same_hooks(group):
    host = loaded_host(group)
    core = host.plugins["capa"]
    assert core.status is PluginStatus.LOADED
    assert core.dist == "capa"
    assert all(r.plugin == "capa" for r in host.components())


def test_unknown_id_lists_available(capa_site, group):
    install(capa_site, group, "acme-capa", "acme_plugin", sp.GOOD)
    host = loaded_host(group)
    with pytest.raises(UnknownComponentError) as err:
        host.adapters.record("acme.thermometer")
    assert "acme.thermometer" in str(err.value)
    assert "acme.thermo" in str(err.value)


def test_import_error_is_reported_and_others_still_load(capa_site, group):
    install(capa_site, group, "acme-capa", "acme_plugin", sp.GOOD)
    install(capa_site, group, "broken-capa", "broken_plugin", sp.IMPORT_ERROR)
    host = loaded_host(group)

    broken = host.plugins["broken"]
    assert broken.status is PluginStatus.FAILED
    assert "import failed: ModuleNotFoundError" in broken.reason
    assert "a_module_that_does_not_exist_anywhere" in broken.reason
    assert "acme.thermo" in host.adapters


def test_duplicate_id_rejects_both_and_names_both_distributions(capa_site, group):
    install(capa_site, group, "acme-capa", "acme_plugin", sp.GOOD, version="1.0")
    install(capa_site, group, "rival-capa", "rival_plugin", sp.DUPLICATE, version="0.9")
    host = loaded_host(group)

    assert "acme.thermo" not in host.adapters
    dupes = [r for r in host.rejections if r.id == "acme.thermo"]
    assert {r.dist for r in dupes} == {"acme-capa", "rival-capa"}
    for r in dupes:
        assert "acme-capa 1.0" in r.reason
        assert "rival-capa 0.9" in r.reason
    # The other components of the first plugin are unaffected.
    assert "acme.soak" in host.procedures
    assert "adapter:acme.thermo" not in host.plugins["acme"].components


def test_contract_violation_rejects_class_with_every_reason(capa_site, group):
    install(capa_site, group, "sloppy-capa", "sloppy_plugin", sp.CONTRACT_VIOLATION)
    host = loaded_host(group)

    assert "acme.fine" in host.procedures
    assert "acme.sloppy" not in host.procedures
    (rej,) = host.rejections_for("sloppy")
    assert rej.kind is ComponentKind.PROCEDURE
    assert 'extra="forbid"' in rej.reason
    assert "run() must be a coroutine function" in rej.reason
    assert "no docstring" in rej.reason


def test_misspelt_hook_fails_the_plugin(capa_site, group):
    install(capa_site, group, "typo-capa", "typo_plugin", sp.HOOK_TYPO)
    host = loaded_host(group)
    rec = host.plugins["typo"]
    assert rec.status is PluginStatus.FAILED
    assert "capa_register_adaptors" in rec.reason


def test_raising_hook_marks_plugin_failed(capa_site, group):
    install(capa_site, group, "boom-capa", "boom_plugin", sp.RAISING_HOOK)
    host = loaded_host(group)
    rec = host.plugins["boom"]
    assert rec.status is PluginStatus.FAILED
    assert "capa_register_sinks() raised RuntimeError: sink registry exploded" in rec.reason


def test_entry_point_name_clash_between_distributions(capa_site, group):
    make_distribution(
        capa_site,
        "one-capa",
        files={"one_mod.py": sp.GOOD},
        entry_points={group: {"shared": "one_mod"}},
    )
    make_distribution(
        capa_site,
        "two-capa",
        files={"two_mod.py": sp.RAISING_HOOK},
        entry_points={group: {"shared": "two_mod"}},
    )
    host = loaded_host(group)
    statuses = {r.dist: r for r in host.plugins.values() if r.name == "shared"}
    assert statuses["one-capa"].status is PluginStatus.LOADED
    assert statuses["two-capa"].status is PluginStatus.FAILED
    assert "also used by one-capa" in statuses["two-capa"].reason


def test_admission_gate_blocks_before_import(capa_site, group, tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    monkeypatch.setenv("CAPA_TEST_CANARY", str(canary))
    install(capa_site, group, "canary-capa", "canary_plugin", sp.CANARY)
    host = PluginHost(group=group)
    host.load(admit=lambda info: f"{info.dist_name} is not trusted")
    rec = host.plugins["canary"]
    assert rec.status is PluginStatus.BLOCKED
    assert rec.reason == "canary-capa is not trusted"
    assert not canary.exists(), "a blocked plugin's code was imported"


def test_load_is_explicit_not_an_import_side_effect(capa_site, group, tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    monkeypatch.setenv("CAPA_TEST_CANARY", str(canary))
    install(capa_site, group, "canary-capa", "canary_plugin", sp.CANARY)
    host = PluginHost(group=group)
    assert not canary.exists()
    host.load()
    assert canary.read_text() == "imported"
    assert host.plugins["canary"].status is PluginStatus.LOADED


def test_installed_workspace_plugins_are_discovered():
    host = PluginHost()
    host.load()
    expected = {"watlow", "sartorius", "nidaq", "camera", "procedures"}
    assert expected <= set(host.plugins)
    for name in expected:
        assert host.plugins[name].dist == f"capa-{name}"
        assert host.plugins[name].status is PluginStatus.LOADED, host.plugins[name].reason
