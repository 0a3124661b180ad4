"""Production mode applies to the operator console exactly as to `capa run`.

capa and capa-gui are installed from freshly built wheels into a real virtualenv. With
capa-gui in the lock, `capa gui` exists and refuses an experiment it cannot resolve
(exit 2, problems printed, nothing written); once capa-gui's trust is revoked, the gate
does not even import it, so there is no `capa gui` command.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from .conftest import ROOT, Venv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gui_venv(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build the capa-gui wheel")
    out = tmp_path_factory.mktemp("capa-gui-wheel")
    subprocess.run(
        [uv, "build", "--package", "capa-gui", "--wheel", "--out-dir", str(out), "-q"],
        cwd=ROOT,
        check=True,
    )
    (wheel,) = out.glob("capa_gui-*.whl")
    venv.install(str(wheel))  # starlette and uvicorn come from the package index
    (venv.work / "experiment.yaml").write_text(
        textwrap.dedent(
            """\
            hardware: rig.toml
            procedure: {id: not.installed}
            operator: {id: tester}
            sample: {id: S-1}
            """
        )
    )
    (venv.work / "rig.toml").write_text(
        textwrap.dedent(
            """\
            name = "r"
            [[devices]]
            name = "d"
            adapter = "capa.sim.signals"
            [devices.params]
            signals = { x = { kind = "constant", unit = "V", value = 1.0 } }
            [[channels]]
            name = "x"
            kind = "voltage"
            unit = "V"
            source = { device = "d", field = "x" }
            """
        )
    )
    return venv


def test_trusted_console_refuses_an_unresolvable_experiment(gui_venv: Venv):
    for name in ("plugins.lock", "plugins.lock.journal"):
        (gui_venv.work / name).unlink(missing_ok=True)
    locked = gui_venv.capa("plugins", "lock", "--reason", "console rig")
    assert locked.returncode == 0, locked.stderr
    assert "trusted gui (capa-gui 0.1.0)" in locked.stdout
    proc = gui_venv.capa("gui", "experiment.yaml", "--no-browser", production=True)
    assert proc.returncode == 2, proc.stderr
    assert f"plugins.lock (auto-discovered): {gui_venv.work / 'plugins.lock'}" in proc.stdout
    assert "not.installed" in proc.stderr
    assert "refused; the console was not started" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (gui_venv.work / "runs").exists()


def test_untrusted_console_is_not_even_imported(gui_venv: Venv):
    for name in ("plugins.lock", "plugins.lock.journal"):
        (gui_venv.work / name).unlink(missing_ok=True)
    assert gui_venv.capa("plugins", "lock", "--reason", "console rig").returncode == 0
    revoked = gui_venv.capa("plugins", "untrust", "gui", "--reason", "not on this rig")
    assert revoked.returncode == 0, revoked.stderr
    proc = gui_venv.capa("gui", "--help", production=True)
    assert proc.returncode == 64  # a command that does not exist: a usage error (EX_USAGE)
    assert "No such command 'gui'" in proc.stderr
    run_help = gui_venv.capa("run", "--help", production=True)
    assert "--serve" not in run_help.stdout  # no console plugin admitted: no option
    dev = gui_venv.capa("gui", "--help")  # dev mode imports every installed plugin
    assert dev.returncode == 0
    assert "operator console" in dev.stdout
