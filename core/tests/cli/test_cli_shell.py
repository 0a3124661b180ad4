"""The capa command run as a real subprocess: version, plugins list, error boundary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capa import __version__
from capa.testing import make_distribution

from ..plugins import sample_plugins as sp

FAILING_CLI = '''
import click
import capa


@capa.hookimpl
def capa_register_cli(group):
    @group.group("fail")
    def fail():
        """Commands that fail on purpose."""

    @fail.command("capa")
    def capa_error():
        raise capa.ConfigError("rig.toml: devices[1].params.port: field required")

    @fail.command("bug")
    def bug():
        raise ValueError("something nobody anticipated")

    @fail.command("integrity")
    def integrity():
        raise capa.IntegrityError("scalars.parquet: checksum mismatch")
'''

CLASHING_CLI = '''
import click
import capa


@capa.hookimpl
def capa_register_cli(group):
    @group.command("version")
    def version():
        """Tries to replace a built-in command."""
'''


def run_capa(*args: str, site: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CAPA_DEBUG"}
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(site), environ.get("PYTHONPATH")])
        )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "capa", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def test_help_lists_builtin_commands():
    proc = run_capa("--help")
    assert proc.returncode == 0
    assert "plugins" in proc.stdout
    assert "version" in proc.stdout


def test_version_lists_core_and_installed_plugins():
    proc = run_capa("version", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["capa"] == __version__
    dists = {p["dist"]: p["version"] for p in data["plugins"]}
    for name in ("watlow", "sartorius", "nidaq", "camera", "procedures"):
        assert f"capa-{name}" in dists

    text = run_capa("version")
    assert text.returncode == 0
    assert text.stdout.startswith(f"capa {__version__} (")
    assert "capa-watlow" in text.stdout


def test_version_warns_when_the_installed_capa_is_a_foreign_package(capa_site):
    # The PyPI name `capa` also belongs to an unrelated package at 0.1: metadata first on
    # sys.path that is not this project's is reported (and the command still exits 0).
    make_distribution(capa_site, "capa", "0.1")
    proc = run_capa("version", "--json", site=capa_site)
    assert proc.returncode == 0, proc.stderr
    assert "capa: warning: the installed 'capa' distribution (0.1" in proc.stderr
    assert "is not this project" in proc.stderr
    assert json.loads(proc.stdout)["foreign_capa"].startswith("the installed 'capa'")
    ours = run_capa("version", "--json")
    assert ours.stderr == ""
    assert json.loads(ours.stdout)["foreign_capa"] is None


def test_no_plugin_accepts_the_foreign_capa_0_1():
    from importlib import metadata

    from packaging.requirements import Requirement

    for name in ("watlow", "sartorius", "nidaq", "camera", "procedures"):
        (req,) = [
            Requirement(r)
            for r in metadata.requires(f"capa-{name}") or []
            if Requirement(r).name == "capa"
        ]
        assert not req.specifier.contains("0.1"), (name, req)
        assert not req.specifier.contains("0.1.9"), (name, req)
        assert req.specifier.contains(__version__), (name, req)


def test_plugins_list_json_shows_status_and_rejections(capa_site):
    make_distribution(
        capa_site,
        "acme-capa",
        files={"acme_plugin.py": sp.GOOD},
        entry_points={"capa": {"acme": "acme_plugin"}},
    )
    make_distribution(
        capa_site,
        "broken-capa",
        files={"broken_plugin.py": sp.IMPORT_ERROR},
        entry_points={"capa": {"broken": "broken_plugin"}},
    )
    make_distribution(
        capa_site,
        "sloppy-capa",
        files={"sloppy_plugin.py": sp.CONTRACT_VIOLATION},
        entry_points={"capa": {"sloppy": "sloppy_plugin"}},
    )
    proc = run_capa("plugins", "list", "--json", site=capa_site)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}

    assert {"capa", "watlow", "sartorius", "nidaq", "camera", "procedures"} <= set(rows)
    assert rows["acme"]["status"] == "loaded"
    assert {"kind": "adapter", "id": "acme.thermo"} in rows["acme"]["components"]
    assert rows["broken"]["status"] == "failed"
    assert "ModuleNotFoundError" in rows["broken"]["reason"]
    (rej,) = rows["sloppy"]["rejected"]
    assert rej["id"] == "acme.sloppy"
    assert "extra=" in rej["reason"]

    table = run_capa("plugins", "list", site=capa_site)
    assert table.returncode == 0, "plugins list exits 0 even with broken plugins"
    assert "problems:" in table.stdout
    assert "broken (broken-capa 1.0): import failed" in table.stdout


def test_plugin_provided_subcommand_runs(capa_site):
    make_distribution(
        capa_site,
        "acme-capa",
        files={"acme_plugin.py": sp.WITH_CLI},
        entry_points={"capa": {"acme": "acme_plugin"}},
    )
    proc = run_capa("acme", "hello", "lab", site=capa_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello lab from acme"

    listing = json.loads(run_capa("plugins", "list", "--json", site=capa_site).stdout)
    (acme,) = [r for r in listing if r["name"] == "acme"]
    assert acme["commands"] == ["acme"]


def test_plugin_cannot_replace_a_builtin_command(capa_site):
    make_distribution(
        capa_site,
        "clash-capa",
        files={"clash_plugin.py": CLASHING_CLI},
        entry_points={"capa": {"clash": "clash_plugin"}},
    )
    listing = json.loads(run_capa("plugins", "list", "--json", site=capa_site).stdout)
    (clash,) = [r for r in listing if r["name"] == "clash"]
    assert clash["status"] == "failed"
    assert "already taken: version" in clash["reason"]
    assert run_capa("version", site=capa_site).stdout.startswith("capa ")


def test_capa_error_is_one_line_with_its_exit_code(capa_site):
    make_distribution(
        capa_site,
        "fail-capa",
        files={"fail_plugin.py": FAILING_CLI},
        entry_points={"capa": {"fail": "fail_plugin"}},
    )
    proc = run_capa("fail", "capa", site=capa_site)
    assert proc.returncode == 2
    assert proc.stderr == "capa: error: rig.toml: devices[1].params.port: field required\n"

    integrity = run_capa("fail", "integrity", site=capa_site)
    assert integrity.returncode == 3
    assert "Traceback" not in integrity.stderr


def test_unexpected_error_exit_5_and_traceback_only_with_debug(capa_site):
    make_distribution(
        capa_site,
        "fail-capa",
        files={"fail_plugin.py": FAILING_CLI},
        entry_points={"capa": {"fail": "fail_plugin"}},
    )
    proc = run_capa("fail", "bug", site=capa_site)
    assert proc.returncode == 5
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "capa: internal error: ValueError: something nobody anticipated "
        "(set CAPA_DEBUG=1 for the traceback)"
    )
    debug = run_capa("fail", "bug", site=capa_site, CAPA_DEBUG="1")
    assert debug.returncode == 5
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'raise ValueError("something nobody anticipated")' in debug.stderr


def test_unknown_command_is_a_usage_error():
    proc = run_capa("frobnicate")
    assert proc.returncode == 64  # EX_USAGE (seeds 000/001), not click's 2
    assert "No such command 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["validate"], "Missing argument 'CONFIG'"),
        (["run"], "Missing argument 'CONFIG'"),
        (["finalize"], "Missing argument"),
        (["method", "validate"], "Missing argument"),
        (["run", "--no-such-option", "x.yaml"], "No such option"),
        (["catalog", "list", "--run-status", "sideways"], "Invalid value"),
    ],
)
def test_every_usage_error_exits_64(argv, says):
    proc = run_capa(*argv)
    assert proc.returncode == 64, proc.stderr
    assert says in proc.stderr
    assert "Usage: capa" in proc.stderr
    assert "Traceback" not in proc.stderr
