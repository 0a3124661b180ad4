"""The production gate: only exact lock matches are imported; everything else is blocked
with its drift kind and never imported (the canary stays silent)."""

from __future__ import annotations

import importlib.metadata as md
import uuid
from dataclasses import replace

import pytest

from capa.plugins.discovery import iter_entry_points
from capa.plugins.host import PluginHost
from capa.plugins.registry import PluginStatus
from capa.runtime.build import plugin_provenance, trust_manifest_fields
from capa.testing import make_distribution
from capa.trust.digest import inspect_distribution
from capa.trust.drift import DriftKind, check_installed
from capa.trust.gate import gate_for, load_trusted_host
from capa.trust.hooks import current_hooks
from capa.trust.lockfile import AttestationRecord, LockEntry, PluginsLock

from .plugin_kit import CANARY_ENV, plugin_source


@pytest.fixture
def group():
    return f"capa.test.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def canary(tmp_path, monkeypatch):
    path = tmp_path / "canary.txt"
    monkeypatch.setenv(CANARY_ENV, str(path))
    return path


def install(site, group, plugin, version="1.0", *, dist=None):
    module = f"{plugin}_{uuid.uuid4().hex[:8]}"
    dist = dist or f"{plugin}-capa"
    info = make_distribution(
        site,
        dist,
        version,
        files={
            f"{module}/__init__.py": "",
            f"{module}/plugin.py": plugin_source(module, f"{plugin}.quick"),
        },
        entry_points={group: {plugin: f"{module}.plugin"}},
    )
    return module, info


def entry_for(plugin, module, info, version="1.0"):
    digest = inspect_distribution(md.PathDistribution(info), f"{module}.plugin").digest
    return LockEntry(
        plugin,
        md.PathDistribution(info).metadata["Name"],
        version,
        f"{module}.plugin",
        digest,
        (f"{plugin}.quick",),
    )


def host_for(lock, group, *, hooks=None):
    """Load through the gate; the lock records today's start-up hooks unless given."""
    recorded = tuple(current_hooks()) if hooks is None else tuple(hooks)
    return load_trusted_host(replace(lock, startup_hooks=recorded), PluginHost(group=group))


def test_locked_plugin_loads_and_is_recorded_as_trusted(capa_site, group, canary):
    module, info = install(capa_site, group, "good")
    att = AttestationRecord("pep740", "w.whl", "00" * 32, "github:o/r/w.yml", "a")
    lock = PluginsLock(sha256="f" * 64).with_entry(
        replace(entry_for("good", module, info), attestation=att)
    )
    host = host_for(lock, group)
    assert host.plugins["good"].status is PluginStatus.LOADED
    assert "good.quick" in host.procedures
    assert canary.read_text() == f"{module} imported\n"
    prov = {p["name"]: p for p in plugin_provenance(host)}
    assert prov["good"]["trust"] == "trusted"
    assert prov["good"]["record_digest"] == lock.plugins["good"].record_digest
    assert prov["good"]["attestation_identity"] == "github:o/r/w.yml"
    assert prov["good"]["lock_sha256"] == "f" * 64
    assert prov["capa"]["trust"] == "builtin"
    assert trust_manifest_fields(host)["plugins_lock"]["sha256"] == "f" * 64


def test_changed_byte_blocks_before_import(capa_site, group, canary):
    module, info = install(capa_site, group, "tamper")
    lock = PluginsLock().with_entry(entry_for("tamper", module, info))
    target = capa_site / module / "plugin.py"
    target.write_bytes(target.read_bytes().replace(b"ran", b"RAN"))
    host = host_for(lock, group)
    rec = host.plugins["tamper"]
    assert rec.status is PluginStatus.BLOCKED
    assert "hash_mismatch" in rec.reason
    assert f"{module}/plugin.py" in rec.reason
    assert not canary.exists()  # never imported
    assert "tamper.quick" not in host.procedures
    assert gate_for(host).blocker_of("tamper.quick").state == "hash_mismatch"


def test_unlisted_plugin_is_blocked_as_missing_from_lock(capa_site, group, canary):
    install(capa_site, group, "intruder")
    host = host_for(PluginsLock(), group)
    assert host.plugins["intruder"].status is PluginStatus.BLOCKED
    assert "missing_from_lock" in host.plugins["intruder"].reason
    assert not canary.exists()


def test_version_entry_point_and_editable_drift(capa_site, group, canary):
    m1, i1 = install(capa_site, group, "bumped", "1.1")
    m2, i2 = install(capa_site, group, "moved")
    m3, i3 = install(capa_site, group, "edit")
    (i3 / "direct_url.json").write_text('{"url": "file:///x", "dir_info": {"editable": true}}')
    lock = PluginsLock()
    lock = lock.with_entry(replace(entry_for("bumped", m1, i1), version="1.0"))
    lock = lock.with_entry(replace(entry_for("moved", m2, i2), entry_point="elsewhere.plugin"))
    lock = lock.with_entry(entry_for("edit", m3, i3))
    lock = lock.with_entry(LockEntry("gone", "gone-capa", "1", "gone", "sha256:" + "0" * 64))
    host = host_for(lock, group)
    kinds = {n: c.drifts[0].kind for n, c in gate_for(host).checks.items()}
    assert kinds == {
        "bumped": DriftKind.VERSION_MISMATCH,
        "moved": DriftKind.ENTRY_POINT_MISMATCH,
        "edit": DriftKind.EDITABLE,
        "gone": DriftKind.MISSING_FROM_INSTALL,
    }
    assert all(host.plugins[n].status is PluginStatus.BLOCKED for n in ("bumped", "moved", "edit"))
    assert not canary.exists()
    # verify (no host, no import) sees the same drift
    checks = {c.name: c.state for c in check_installed(iter_entry_points(group), lock)}
    assert checks == {k: v.value for k, v in kinds.items()}


def test_require_attestation_blocks_unattested_entries(capa_site, group, canary):
    module, info = install(capa_site, group, "plain")
    lock = replace(
        PluginsLock().with_entry(entry_for("plain", module, info)), require_attestation=True
    )
    host = host_for(lock, group)
    assert "attestation_missing" in host.plugins["plain"].reason
    assert not canary.exists()


def test_dev_mode_provenance_says_dev(capa_site, group):
    host = PluginHost(group=group)
    host.load()
    assert {p["trust"] for p in plugin_provenance(host)} == {"dev"}
    assert trust_manifest_fields(host) == {"plugins_lock": {"mode": "dev"}}
