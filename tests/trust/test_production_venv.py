"""Production mode end to end, in a real virtualenv with capa and plugins from wheels.

Each test starts from a freshly installed, locked throwaway plugin whose module writes
to a canary file the moment it is imported; a blocked plugin must leave no trace there.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .conftest import Venv, plugin_kit

pytestmark = pytest.mark.slow

MODULE = "trustkit"
RIG = plugin_kit.RIG


def wheel(
    tmp: Path,
    version: str,
    *,
    dist: str = "trustkit-capa",
    plugin: str = "trustkit",
    module: str = MODULE,
    procedure: str = "trustkit.quick",
) -> Path:
    return plugin_kit.write_wheel(
        tmp / f"w-{dist}-{version}", dist, version, plugin=plugin, module=module,
        procedure_id=procedure,
    )  # fmt: skip


@pytest.fixture
def rig(venv: Venv, tmp_path: Path) -> Venv:
    """trustkit 1.0 freshly installed from its wheel, nothing else, and locked."""
    venv.uninstall("trustkit-capa", "intruder-capa")
    venv.install("--no-deps", "--reinstall", str(wheel(tmp_path, "1.0")))
    for name in ("plugins.lock", "plugins.lock.journal", "canary.txt"):
        (venv.work / name).unlink(missing_ok=True)
    proc = venv.capa("plugins", "lock", "--reason", "fresh rig")
    assert proc.returncode == 0, proc.stderr
    assert "trusted trustkit (trustkit-capa 1.0)" in proc.stdout
    (venv.work / "rig.toml").write_text(RIG)
    (venv.work / "experiment.yaml").write_text(
        textwrap.dedent(
            """\
            hardware: rig.toml
            procedure: {id: trustkit.quick}
            operator: {id: tester}
            sample: {id: S-1}
            """
        )
    )
    venv.canary.unlink(missing_ok=True)
    return venv


def run(venv: Venv) -> tuple[int, dict[str, str]]:
    proc = venv.capa("run", "experiment.yaml", production=True)
    fields = {
        k: v.strip() for k, _, v in (line.partition(":") for line in proc.stdout.splitlines())
    }
    assert f"plugins.lock (auto-discovered): {venv.work / 'plugins.lock'}" in proc.stdout
    return proc.returncode, fields


def verify(venv: Venv) -> tuple[int, dict[str, dict]]:
    proc = venv.capa("plugins", "verify", "--json")
    return proc.returncode, {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}


def test_trusted_plugin_runs_and_one_changed_byte_blocks_it_before_import(rig):
    assert verify(rig)[0] == 0
    code, out = run(rig)
    assert code == 0, out
    manifest = json.loads((Path(out["bundle"]) / "manifest.json").read_text())
    entry = next(p for p in manifest["plugins"] if p["name"] == "trustkit")
    assert entry["trust"] == "trusted"
    assert entry["status"] == "loaded"
    assert rig.canary.read_text() == f"{MODULE} imported\n"

    module = rig.site / MODULE / "plugin.py"
    data = bytearray(module.read_bytes())
    data[data.index(b" ran")] = ord("R")  # one byte; still valid Python
    module.write_bytes(bytes(data))
    rig.canary.unlink()
    code, plugins = verify(rig)
    assert code == 3
    assert plugins["trustkit"]["state"] == "hash_mismatch"
    assert f"{MODULE}/plugin.py" in plugins["trustkit"]["drift"][0]["detail"]
    bundles = set((rig.work / "runs").glob("2*"))
    code, out = run(rig)
    assert code == 1
    assert out["exit_reason"].startswith("plugin_blocked: procedure 'trustkit.quick'")
    assert "hash_mismatch" in out["exit_reason"]
    assert not rig.canary.exists(), "blocked plugin code was imported"
    assert set((rig.work / "runs").glob("2*")) == bundles  # no bundle


def test_unlisted_plugin_is_blocked_and_version_bump_is_version_mismatch(rig, tmp_path):
    rig.install("--no-deps", str(wheel(tmp_path, "0.1", dist="intruder-capa",
                plugin="intruder", module="intruder", procedure="intruder.quick")))  # fmt: skip
    code, plugins = verify(rig)
    assert code == 3
    assert plugins["intruder"]["state"] == "missing_from_lock"
    code, out = run(rig)  # the run needs only trustkit: it goes ahead without the intruder
    assert code == 0, out
    assert rig.canary.read_text() == f"{MODULE} imported\n"  # intruder never imported

    rig.install("--no-deps", str(wheel(tmp_path, "1.1")))
    rig.canary.unlink()
    code, plugins = verify(rig)
    assert plugins["trustkit"]["state"] == "version_mismatch"
    code, out = run(rig)
    assert code == 1
    assert (
        "version_mismatch: installed trustkit-capa 1.1, locked trustkit-capa 1.0"
        in (out["exit_reason"])
    )
    assert not rig.canary.exists()


def test_editable_install_is_blocked(rig, tmp_path):
    project = tmp_path / "trustkit-src"
    (project / MODULE).mkdir(parents=True)
    (project / MODULE / "__init__.py").write_text("")
    (project / MODULE / "plugin.py").write_text(plugin_kit.plugin_source(MODULE, "trustkit.quick"))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "trustkit-capa"
            version = "1.0"

            [project.entry-points.capa]
            trustkit = "{MODULE}.plugin"

            [tool.hatch.build.targets.wheel]
            packages = ["{MODULE}"]
            """
        )
    )
    rig.install("--no-deps", "-e", str(project))
    code, plugins = verify(rig)
    assert code == 3
    assert plugins["trustkit"]["state"] == "editable"
    proc = rig.capa("plugins", "trust", "trustkit", "--reason", "dev build")
    assert proc.returncode == 2
    assert "cannot trust an editable install" in proc.stderr
    code, out = run(rig)
    assert code == 1
    assert "editable" in out["exit_reason"]
    assert not rig.canary.exists()


def _forged_pyc(*, mtime: int = 0, size: int = 0) -> bytes:
    import importlib.util
    import marshal

    evil = f"import os\nopen(os.environ['{plugin_kit.CANARY_ENV}'], 'a').write('EVIL\\n')\n"
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += (mtime & 0xFFFFFFFF).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return header + marshal.dumps(compile(evil, "<evil>", "exec"))


def test_dropped_bytecode_and_start_up_hooks_in_a_real_install(rig):
    """The issue's bypasses against a wheel installed by a real installer."""
    import shutil
    import sys

    # 1. A sourceless package shadowing plugin.py: reported by verify, never imported.
    pkg = rig.site / MODULE / "plugin"
    pkg.mkdir()
    (pkg / "__init__.pyc").write_bytes(_forged_pyc())
    proc = rig.capa("plugins", "verify")
    assert proc.returncode == 3
    assert f"{MODULE}/plugin/__init__.pyc" in proc.stdout
    code, out = run(rig)
    assert code == 1
    assert not rig.canary.exists()
    (pkg / "__init__.pyc").unlink()
    pkg.rmdir()

    # 2. A forged __pycache__ entry that CPython would accept: production compiles the
    #    locked source instead, so the genuine plugin runs.
    source = rig.site / MODULE / "plugin.py"
    st = source.stat()
    cache = rig.site / MODULE / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / f"plugin.{sys.implementation.cache_tag}.pyc").write_bytes(
        _forged_pyc(mtime=int(st.st_mtime), size=st.st_size)
    )
    assert verify(rig)[0] == 0
    code, out = run(rig)
    assert code == 0, out
    assert rig.canary.read_text() == f"{MODULE} imported\n"
    rig.canary.unlink()
    shutil.rmtree(cache)

    # 3. A .pth file added to site-packages after locking blocks every plugin.
    (rig.site / "zz-added.pth").write_text("import os\n")
    try:
        code, plugins = verify(rig)
        assert code == 3
        assert plugins["trustkit"]["state"] == "startup_hook" or any(
            d["kind"] == "startup_hook" for d in plugins["trustkit"]["drift"]
        )
        code, out = run(rig)
        assert code == 1
        assert "start-up hook added since locking: zz-added.pth" in out["exit_reason"]
        assert not rig.canary.exists()
    finally:
        (rig.site / "zz-added.pth").unlink()
