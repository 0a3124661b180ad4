"""Developer and CI sessions for the capa workspace.

`nox` (no arguments) runs what CI runs: the test suite on Python 3.11 and 3.13, lint,
type checking, and the wheel-install check. Every session builds its own environment
with uv from the workspace lock, so nothing installed by hand is needed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True  # a missing 3.13 must fail, not skip
nox.options.sessions = ["tests", "oracles", "lint", "typecheck", "wheels", "trust"]
# (refresh_lock is not part of the default run: it rewrites ./plugins.lock.)

ROOT = Path(__file__).parent
PYTHONS = ["3.11", "3.13"]
PACKAGES = ["capa", *sorted(p.name for p in (ROOT / "packages").iterdir() if p.is_dir())]
PLUGINS = ["camera", "gui", "nidaq", "procedures", "report", "sartorius", "watlow"]


def _expose_pyenv_interpreters() -> None:
    """Put every installed pyenv 3.11 / 3.13 interpreter itself on PATH.

    On machines where pyenv selects one global version, `python3.13` on PATH is a shim
    that refuses to run, so neither nox nor uv would find 3.13. Prepending the real
    interpreters' bin directories makes `python3.11` and `python3.13` resolve directly.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    dirs = []
    for minor in PYTHONS:
        found = sorted(
            root.glob(f"{minor}.*"),
            key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        )
        if found and (found[-1] / "bin").is_dir():
            dirs.append(str(found[-1] / "bin"))
    if dirs:
        os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    # Never fall back to downloading an interpreter (there is no network for it here).
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


_expose_pyenv_interpreters()


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the whole workspace (editable) plus dependency groups into the session."""
    args = ["uv", "sync", "--locked", "--no-default-groups"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite: core, every plugin package, and end-to-end tests."""
    _sync(session, "test")
    # pytest exits 5 when it collects nothing; for this suite that means tests went
    # missing (a bad path, a broken conftest), so say so instead of passing quietly.
    code = session.run("pytest", *session.posargs, success_codes=[0, 5])
    if code == 5:
        session.error("pytest collected no tests: the test suite is missing or misconfigured")


# Independent, hardware-validated client libraries the oracle tests compare capa with.
# Pinned to the versions the oracle tests were written against; test oracles only, never a
# dependency of any capa distribution. They need Python >= 3.13.
ORACLE_LIBRARIES = [
    "watlowlib==0.8.1",
    "sartoriuslib==0.4.3",
    "anymodbus==0.3.0",
    "anyserial==0.2.0",
]


@nox.session(python="3.13")
def oracles(session: nox.Session) -> None:
    """capa's drivers and simulators against independent, hardware-validated libraries.

    Drives capa's simulators with watlowlib / sartoriuslib clients, capa's drivers against
    those libraries' fakes (and anymodbus' MockSlave), and replays frames captured from
    real devices through capa's codecs. A disagreement fails the session.
    """
    _sync(session, "test")
    session.install(*ORACLE_LIBRARIES)
    session.run("pytest", "oracles", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python="3.11")
@nox.parametrize("package", PACKAGES)
def package_tests(session: nox.Session, package: str) -> None:
    """One distribution's tests with only that distribution (and core) installed."""
    path = "core" if package == "capa" else f"packages/{package}"
    session.install("-e", "core", *(["-e", path] if path != "core" else []))
    session.install("pytest", "hypothesis")
    if package == "capa":
        # `capa catalog query` (DuckDB, s3fs) and the local S3 server its store test starts.
        session.install("-e", "core[query,s3]", "moto[s3]>=5", "flask>=3", "flask-cors>=4")
    if package == "capa-gui":
        # The console's tests drive the demo rig (every device package and the recipe
        # runner) over HTTP and in the system chromium (Playwright, no browser download).
        rig = ["capa-watlow", "capa-sartorius", "capa-nidaq", "capa-camera", "capa-procedures"]
        editable = [arg for name in rig for arg in ("-e", f"packages/{name}")]
        session.install(*editable, "httpx", "playwright")
    if package == "capa-report":
        # The report's tests write a real (shortened) demo run first, then open the page
        # in the system chromium (Playwright, no browser download).
        rig = ["capa-watlow", "capa-sartorius", "capa-nidaq", "capa-camera", "capa-procedures"]
        editable = [arg for name in rig for arg in ("-e", f"packages/{name}")]
        session.install(*editable, "playwright")
    session.run("pytest", f"{path}/tests", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff lint and format check over the whole workspace."""
    _sync(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every src/ tree (with the optional extras, e.g. sigstore)."""
    _sync(session, "lint", "test")
    session.run("mypy")


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The README's main command: run the demo recipe on the simulated rig.

    Every device of examples/demo/rig.toml runs behind its own simulator (Watlow and
    Sartorius speaking their wire protocols over pseudo-terminals, the NI-DAQ and camera
    simulators); the recipe ramps, holds, waits for the furnace, acknowledges its prompt,
    records and cools down (about two minutes), then the bundle is verified.
    Extra arguments go to `capa run` (e.g. `nox -s demo -- --runs-root /tmp/runs`).
    """
    _sync(session)
    session.run("capa", "version")
    args = list(session.posargs) or ["--runs-root", str(ROOT / "runs")]
    session.run("capa", "run", "examples/demo/recipe.yaml", *args)
    session.run("capa", "catalog", "list", *args)


@nox.session(python="3.11", venv_backend="none")
def wheels(session: nox.Session) -> None:
    """Build every distribution as a wheel and install them with plain pip into a clean venv.

    Proves the packages stand alone (no workspace, no editable installs): afterwards
    `capa plugins list --json` in that venv must list every plugin in PLUGINS, loaded.
    """
    out = ROOT / "dist" / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    for package in PACKAGES:
        session.run("uv", "build", "--package", package, "--wheel", "--out-dir", str(out))
    built = sorted(out.glob("*.whl"))
    assert len(built) == len(PACKAGES), f"expected {len(PACKAGES)} wheels, got {built}"

    venv = Path(session.create_tmp()) / "clean-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python3.11", "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    session.run(str(python), "-m", "pip", "install", "--quiet", *map(str, built))
    listing = session.run(str(venv / "bin" / "capa"), "plugins", "list", "--json", silent=True)
    assert isinstance(listing, str)
    rows = {row["name"]: row for row in json.loads(listing)}
    for name in PLUGINS:
        row = rows.get(name)
        assert row is not None, (
            f"plugin {name!r} missing from `capa plugins list` in the clean venv"
        )
        assert row["status"] == "loaded", f"plugin {name!r}: {row['status']} {row['reason']}"
        assert not row["rejected"], f"plugin {name!r} had rejected components: {row['rejected']}"
    session.run(str(venv / "bin" / "capa"), "version")
    session.log(f"clean venv {venv}: all {len(PLUGINS)} plugins loaded from wheels")


REFRESH_LOCK = "uv run nox -s refresh_lock"
"""The one command that rewrites the repository's plugins.lock from this tree."""


def _wheel_env(session: nox.Session, tmp: Path) -> Path:
    """Build every distribution as a wheel; install them in a fresh venv; return its bin.

    Reproducible: wheels are built with SOURCE_DATE_EPOCH pinned (hatchling then writes
    fixed zip timestamps; the record digests hash file contents only), dependencies come
    pinned from uv.lock (`uv export`), and the venv is made without pip/setuptools so it
    has no start-up hooks (.pth files) but those the pinned dependencies install. So the
    lock only changes when a plugin's files (or the pinned dependencies' hooks) change.
    """
    shutil.rmtree(tmp, ignore_errors=True)
    out = tmp / "wheels"
    env = {"SOURCE_DATE_EPOCH": "315532800"}  # 1980-01-01, the earliest zip timestamp
    for package in PACKAGES:
        session.run("uv", "build", "--package", package, "--wheel", "--out-dir", str(out), env=env)
    built = sorted(out.glob("*.whl"))
    assert len(built) == len(PACKAGES), f"expected {len(PACKAGES)} wheels, got {built}"
    requirements = tmp / "requirements.txt"
    session.run(
        "uv", "export", "--frozen", "--no-default-groups", "--no-emit-workspace",
        "--no-hashes", "--format", "requirements.txt", "--output-file", str(requirements),
    )  # fmt: skip
    venv = tmp / "venv"
    session.run("python3.11", "-m", "venv", "--without-pip", str(venv))
    python = str(venv / "bin" / "python")
    session.run("uv", "pip", "install", "--quiet", "--python", python, "-r", str(requirements))
    session.run(
        "uv", "pip", "install", "--quiet", "--no-deps", "--python", python, *map(str, built)
    )
    return venv / "bin"


def _clean_env(tmp: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "xdg"),
        "CAPA_RUNS_ROOT": str(tmp / "runs"),
    }


@nox.session(python="3.11", venv_backend="none")
def refresh_lock(session: nox.Session) -> None:
    """Rewrite the repository's plugins.lock from wheels built from this tree.

    Run after changing any plugin (the `trust` session fails until you do), then review
    and commit the diff. Equivalent by hand: build the wheels, install them into a fresh
    venv as `_wheel_env` does, and run `capa plugins lock` there.
    """
    tmp = Path(session.create_tmp()).resolve() / "refresh-lock"
    bin_dir = _wheel_env(session, tmp)
    work = tmp / "work"
    work.mkdir()
    with session.chdir(work):
        session.run(
            str(bin_dir / "capa"), "plugins", "lock", "--plugins-lock", "plugins.lock",
            "--reason", "nox -s refresh_lock", env=_clean_env(tmp),
        )  # fmt: skip
    shutil.copyfile(work / "plugins.lock", ROOT / "plugins.lock")
    session.log(f"wrote {ROOT / 'plugins.lock'}; review `git diff plugins.lock` and commit it")


@nox.session(python="3.11", venv_backend="none")
def trust(session: nox.Session) -> None:
    """Production mode from wheels against the repository's committed plugins.lock.

    Builds every distribution as a wheel, installs them into a fresh venv (no editable
    installs), and checks `capa plugins verify` against ./plugins.lock: if a plugin
    changed and the lock was not refreshed, the session FAILS naming the command that
    refreshes it. Then runs examples/demo/free_run.yaml (2 s) with
    CAPA_PLUGIN_MODE=production and that lock; the run must exit 0, its manifest must
    record every plugin as trusted, and `capa catalog verify` must pass.
    """
    tmp = Path(session.create_tmp()).resolve() / "trust"
    bin_dir = _wheel_env(session, tmp)
    capa = str(bin_dir / "capa")
    lock = ROOT / "plugins.lock"
    if not lock.is_file():
        session.error(f"{lock} is missing; create it with: {REFRESH_LOCK}")
    env = _clean_env(tmp)
    verify = session.run(
        capa, "plugins", "verify", "--plugins-lock", str(lock), env=env, success_codes=[0, 3],
        silent=True,
    )  # fmt: skip
    assert isinstance(verify, str)
    if "drift:" in verify:
        session.log(verify)
        session.error(
            "plugins.lock at the repository root no longer matches the plugins built from "
            f"this tree (drift above). Refresh it with:\n\n    {REFRESH_LOCK}\n\n"
            "then review and commit the new plugins.lock."
        )

    work = tmp / "work"
    shutil.copytree(ROOT / "examples" / "demo", work)
    experiment = work / "free_run.yaml"
    text = experiment.read_text().replace(
        "  id: capa.builtin.free_run\n",
        "  id: capa.builtin.free_run\n  config: {duration_s: 2}\n",
    )
    assert "duration_s" in text, "examples/demo/free_run.yaml changed shape"
    experiment.write_text(text)
    with session.chdir(work):
        summary = session.run(
            capa, "run", "free_run.yaml", "--plugins-lock", str(lock),
            env={**env, "CAPA_PLUGIN_MODE": "production"}, silent=True,
        )  # fmt: skip
    assert isinstance(summary, str)
    session.log(summary)
    bundle = next(
        line.split(":", 1)[1].strip() for line in summary.splitlines() if line.startswith("bundle:")
    )
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    states = {p["name"]: p["trust"] for p in manifest["plugins"]}
    for name in PLUGINS:
        assert states.get(name) == "trusted", f"plugin {name!r}: {states.get(name)}"
    assert manifest["custom"]["plugins_lock"]["sha256"], "lock sha256 missing from manifest"
    session.run(capa, "catalog", "verify", "--all", env=env)
    session.log(f"production run from wheels with the committed plugins.lock sealed {bundle}")


# Peer frameworks the benchmark compares capa with. They are installed into the bench
# session's own environment only: never a capa dependency. py-spy profiles a run.
# Pinned to the versions the recorded figures (bench/README.md) were measured with, so a
# before/after comparison does not silently change a peer underneath it.
BENCH_PEERS = [
    "qcodes==0.58.0",
    "bluesky==1.15.1",
    "ophyd==1.11.2",
    "suitcase-msgpack==0.3.0",
    "py-spy==0.4.3",
]


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite (bench/suite.py): capa's figures and QCoDeS / Bluesky side by side.

    Installs the workspace (every plugin) plus the peers, then runs every part and writes
    bench/results/*.json. `nox -s bench -- --quick` is a smoke run of a couple of minutes;
    `nox -s bench -- peers` runs one part (see `python bench/suite.py --list`).
    """
    _sync(session)
    session.install(*BENCH_PEERS)
    session.run("python", "bench/suite.py", *session.posargs)
