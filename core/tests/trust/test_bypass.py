"""The trust bypasses of issue 19, each with a canary that must never see the dropped code.

Every attack here writes ``EVIL`` to the canary file if its code runs; the genuine plugin
writes ``<module> imported``.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest

from capa.plugins.host import PluginHost
from capa.plugins.registry import PluginStatus
from capa.runtime.build import plugin_provenance
from capa.trust import hooks as hooks_module
from capa.trust.drift import check_installed
from capa.trust.gate import gate_for, load_trusted_host
from capa.trust.guard import ImportGuard
from capa.trust.hooks import StartupHook
from capa.trust.lockfile import PluginsLock

from .plugin_kit import CANARY_ENV
from .test_gate import entry_for, host_for, install

EVIL = f"""
import os
with open(os.environ["{CANARY_ENV}"], "a", encoding="utf-8") as f:
    f.write("EVIL\\n")
"""


@pytest.fixture
def group():
    return f"capa.test.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def canary(tmp_path, monkeypatch):
    path = tmp_path / "canary.txt"
    monkeypatch.setenv(CANARY_ENV, str(path))
    return path


def _pyc(source: str, *, mtime: int = 0, size: int = 0) -> bytes:
    """A timestamp-based .pyc of ``source`` whose header claims ``mtime`` and ``size``."""
    code = compile(source, "<evil>", "exec")
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (mtime & 0xFFFFFFFF).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return header + marshal.dumps(code)


def _locked(site, group, name):
    module, info = install(site, group, name)
    return module, PluginsLock().with_entry(entry_for(name, module, info))


def test_sourceless_package_pyc_next_to_plugin_py_is_blocked(capa_site, group, canary):
    module, lock = _locked(capa_site, group, "pyc")
    pkg = capa_site / module / "plugin"
    pkg.mkdir()
    (pkg / "__init__.pyc").write_bytes(_pyc(EVIL))
    host = host_for(lock, group)
    rec = host.plugins["pyc"]
    assert rec.status is PluginStatus.BLOCKED
    assert f"bytecode outside __pycache__ (never trusted): {module}/plugin/__init__.pyc" in (
        rec.reason
    )
    assert not canary.exists()


def test_hashless_record_row_does_not_admit_a_package(capa_site, group, canary):
    module, lock = _locked(capa_site, group, "hashless")
    pkg = capa_site / module / "plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(EVIL)
    (record,) = capa_site.glob("hashless_capa-*.dist-info/RECORD")
    record.write_text(record.read_text() + f"{module}/plugin/__init__.py,,\n")
    host = host_for(lock, group)
    rec = host.plugins["hashless"]
    assert rec.status is PluginStatus.BLOCKED
    assert f"file listed in RECORD without a hash: {module}/plugin/__init__.py" in rec.reason
    assert not canary.exists()


def test_tampered_pycache_never_runs_in_place_of_locked_source(capa_site, group, canary):
    module, lock = _locked(capa_site, group, "cache")
    source = capa_site / module / "plugin.py"
    st = source.stat()
    cache = capa_site / module / "__pycache__"
    cache.mkdir(exist_ok=True)
    pyc = cache / f"plugin.{sys.implementation.cache_tag}.pyc"
    pyc.write_bytes(_pyc(EVIL, mtime=int(st.st_mtime), size=st.st_size))
    # Without the guard, CPython runs the forged cache instead of plugin.py:
    env = {**os.environ, "PYTHONPATH": str(capa_site), CANARY_ENV: str(canary)}
    subprocess.run([sys.executable, "-c", f"import {module}.plugin"], env=env, check=True)
    assert canary.read_text() == "EVIL\n", "the forged cache is not what CPython would run"
    canary.unlink()

    host = host_for(lock, group)
    assert host.plugins["cache"].status is PluginStatus.LOADED
    assert canary.read_text() == f"{module} imported\n"  # the locked source ran, not the cache
    assert "cache.quick" in host.procedures


def test_guard_refuses_sourceless_and_unpinned_modules_even_past_the_file_check(capa_site, canary):
    """Defence in depth: the loader itself refuses what the lock does not pin."""
    module = f"guarded_{uuid.uuid4().hex[:8]}"
    (capa_site / module).mkdir()
    init = capa_site / module / "__init__.py"
    init.write_text("")
    (capa_site / module / "good.py").write_text("VALUE = 1\n")
    (capa_site / module / "sub").mkdir()
    (capa_site / module / "sub" / "__init__.pyc").write_bytes(_pyc(EVIL))
    guard = ImportGuard()
    import hashlib

    pinned = {
        os.path.realpath(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (init, capa_site / module / "good.py")
    }
    guard.guard([module], pinned)
    sys.meta_path.insert(0, guard)
    try:
        assert importlib.import_module(f"{module}.good").VALUE == 1
        with pytest.raises(ImportError, match=r"not a file plugins\.lock pins"):
            importlib.import_module(f"{module}.sub")
        (capa_site / module / "good2.py").write_text(EVIL)
        with pytest.raises(ImportError, match=r"not a file plugins\.lock pins"):
            importlib.import_module(f"{module}.good2")
    finally:
        sys.meta_path.remove(guard)
        for name in [m for m in sys.modules if m.split(".")[0] == module]:
            del sys.modules[name]
    assert not canary.exists()


def test_source_changed_after_admission_is_refused_at_import(capa_site, canary):
    module = f"toctou_{uuid.uuid4().hex[:8]}"
    (capa_site / module).mkdir()
    init = capa_site / module / "__init__.py"
    init.write_text("")
    guard = ImportGuard()
    guard.guard([module], {os.path.realpath(init): "0" * 64})  # admitted bytes differ
    init.write_text(EVIL)
    sys.meta_path.insert(0, guard)
    try:
        with pytest.raises(ImportError, match=r"changed after plugins\.lock admitted it"):
            importlib.import_module(module)
    finally:
        sys.meta_path.remove(guard)
        sys.modules.pop(module, None)
    assert not canary.exists()


def test_pth_file_added_or_changed_since_locking_blocks_every_plugin(
    capa_site, group, canary, tmp_path, monkeypatch
):
    site = tmp_path / "fake-site"
    site.mkdir()
    (site / "ok.pth").write_text("/nowhere\n")
    monkeypatch.setattr(hooks_module, "_site_dirs", lambda: [("", site)])
    _module, lock = _locked(capa_site, group, "pth")
    recorded = hooks_module.current_hooks()
    assert [h.name for h in recorded] == ["ok.pth"]

    (site / "evil.pth").write_text("import os\n")
    host = host_for(lock, group, hooks=recorded)
    rec = host.plugins["pth"]
    assert rec.status is PluginStatus.BLOCKED
    assert "startup_hook: start-up hook added since locking: evil.pth" in rec.reason
    assert not canary.exists()

    (site / "evil.pth").unlink()
    (site / "ok.pth").write_text("import os; os.system('true')\n")
    checks = {
        c.name: c
        for c in check_installed(_infos(group), replace(lock, startup_hooks=tuple(recorded)))
    }
    assert "start-up hook changed since locking: ok.pth" in checks["pth"].reason()
    assert not checks["pth"].trusted


def test_lock_round_trips_startup_hooks(tmp_path):
    from capa.trust.lockfile import write_lock

    lock = PluginsLock(startup_hooks=(StartupHook("a.pth", "ab" * 32),))
    again = write_lock(tmp_path / "plugins.lock", lock)
    assert again.startup_hooks == lock.startup_hooks


def _infos(group):
    from capa.plugins.discovery import iter_entry_points

    return iter_entry_points(group)


def test_name_clash_refusal_names_the_locked_distribution(capa_site, group, canary):
    module, info = install(capa_site, group, "clash", dist="zz-genuine")
    lock = PluginsLock().with_entry(entry_for("clash", module, info))
    install(capa_site, group, "clash", dist="aa-impostor")  # sorts (and loads) first
    host = host_for(lock, group)
    gate = gate_for(host)
    blocker = gate.blocker_of("clash.quick")
    assert blocker is not None
    assert blocker.dist == "zz-genuine"  # not the impostor
    assert "name_clash: plugin name 'clash' is also declared by aa-impostor 1.0" in (
        blocker.reason()
    )
    provenance = {p["dist"]: p for p in plugin_provenance(host) if p["name"] == "clash"}
    assert provenance["aa-impostor"]["trust"] == "version_mismatch"
    assert provenance["zz-genuine"]["trust"] == "name_clash"
    assert provenance["zz-genuine"]["record_digest"] == lock.plugins["clash"].record_digest
    by_dist = {c.dist: c for c in check_installed(_infos(group), lock)}
    assert by_dist["aa-impostor"].state == "version_mismatch"
    assert "name_clash" in by_dist["zz-genuine"].reason()
    assert not canary.exists()


def test_load_trusted_host_guards_blocked_packages(capa_site, group, canary):
    module, lock = _locked(capa_site, group, "blockedpkg")
    (capa_site / module / "extra.py").write_text(EVIL)  # unlisted: blocks the plugin
    host = load_trusted_host(
        replace(lock, startup_hooks=tuple(hooks_module.current_hooks())),
        PluginHost(group=group),
    )
    assert host.plugins["blockedpkg"].status is PluginStatus.BLOCKED
    with pytest.raises(ImportError, match=r"not a file plugins\.lock pins"):
        importlib.import_module(f"{module}.extra")
    assert not canary.exists()
