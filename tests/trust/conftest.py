"""A real virtualenv with capa installed from a freshly built wheel (not editable).

The capa wheel is built once per test session and the venv once per module; each test
then installs its throwaway plugin wheels into that venv, as a lab would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "trust_plugin_kit", ROOT / "core" / "tests" / "trust" / "plugin_kit.py"
)
assert _spec is not None
assert _spec.loader is not None
plugin_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin_kit)


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build and install the capa wheel")
    return uv


@pytest.fixture(scope="session")
def capa_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("capa-wheel")
    subprocess.run(
        [_uv(), "build", "--package", "capa", "--wheel", "--out-dir", str(out), "-q"],
        cwd=ROOT,
        check=True,
    )
    (wheel,) = out.glob("capa-*.whl")
    return wheel


class Venv:
    """A virtualenv with capa; helpers to install wheels and run `capa` in a work dir."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.work = work
        self.canary = work / "canary.txt"
        (self.site,) = path.glob("lib/python*/site-packages")

    def install(self, *args: str) -> None:
        subprocess.run(
            [_uv(), "pip", "install", "-q", "--python", str(self.python), *args],
            check=True,
            capture_output=True,
        )

    def uninstall(self, *names: str) -> None:
        subprocess.run(
            [_uv(), "pip", "uninstall", "-q", "--python", str(self.python), *names],
            check=False,
            capture_output=True,
        )

    def capa(self, *args: str, production: bool = False) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CAPA_", "XDG_", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(
            HOME=str(self.work / "home"),
            XDG_CONFIG_HOME=str(self.work / "xdg"),
            CAPA_RUNS_ROOT=str(self.work / "runs"),
            **{plugin_kit.CANARY_ENV: str(self.canary)},
        )
        if production:
            env["CAPA_PLUGIN_MODE"] = "production"
        return subprocess.run(
            [str(self.path / "bin" / "capa"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
            timeout=180,
            check=False,
        )


@pytest.fixture(scope="module")
def venv(capa_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("trust-venv")
    path = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    work = base / "work"
    work.mkdir()
    env = Venv(path, work)
    env.install(str(capa_wheel))
    return env
