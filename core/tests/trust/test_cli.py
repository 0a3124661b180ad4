"""`capa plugins trust/untrust/verify/lock/list` and production `capa run` refusals,
driven as real `capa` processes against throwaway distributions on PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from capa.testing import make_distribution
from capa.trust.lockfile import load_lock

from .plugin_kit import CANARY_ENV, RIG, plugin_source

DUP_ENTRY = """
[[plugins]]
name = "a"
dist = "a"
version = "1"
entry_point = "a"
record_digest = "sha256:00"
"""


class Rig:
    """A working directory, a private HOME/XDG dir, and a site dir with one test plugin."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.site = tmp / "site"
        self.site.mkdir()
        self.canary = tmp / "canary.txt"
        self.module = f"tk_{uuid.uuid4().hex[:8]}"
        make_distribution(
            self.site,
            "tk-capa",
            "1.0",
            files={
                f"{self.module}/__init__.py": "",
                f"{self.module}/plugin.py": plugin_source(self.module, "tk.quick"),
            },
            entry_points={"capa": {"tk": f"{self.module}.plugin"}},
        )
        self.lock = tmp / "plugins.lock"

    def capa(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("CAPA_", "XDG_"))}
        environ.update(
            HOME=str(self.tmp / "home"),
            XDG_CONFIG_HOME=str(self.tmp / "xdg"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(self.site), environ.get("PYTHONPATH")])),
            **{CANARY_ENV: str(self.canary)},
        )
        environ.update(env)
        return subprocess.run(
            [sys.executable, "-m", "capa", *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=self.tmp,
            timeout=120,
            check=False,
        )

    def journal(self) -> list[list[str]]:
        text = (self.tmp / "plugins.lock.journal").read_text()
        return [line.split("\t") for line in text.splitlines()]

    def experiment(self, procedure: str) -> Path:
        (self.tmp / "rig.toml").write_text(RIG)
        path = self.tmp / "experiment.yaml"
        path.write_text(
            f"hardware: rig.toml\nprocedure:\n  id: {procedure}\n"
            "operator: {id: tester}\nsample: {id: S-1}\n"
        )
        return path


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_trust_by_name_then_by_component_id_writes_lock_and_journal(rig):
    proc = rig.capa("plugins", "trust", "tk", "--reason", "bench test")
    assert proc.returncode == 0, proc.stderr
    lock = load_lock(rig.lock)
    entry = lock.plugins["tk"]
    assert (entry.dist, entry.version, entry.entry_point) == (
        "tk-capa",
        "1.0",
        f"{rig.module}.plugin",
    )
    assert entry.provides == ("tk.quick",)
    assert entry.record_digest in proc.stdout
    # Only the plugin being trusted was imported (the workspace plugins were not asked).
    assert rig.canary.read_text() == f"{rig.module} imported\n"

    proc = rig.capa("plugins", "trust", "tk.quick", "--reason", "refresh via component id")
    assert proc.returncode == 0, proc.stderr
    lines = rig.journal()
    assert [line[1:5] for line in lines] == [["trust", "tk", "1.0", entry.record_digest]] * 2
    assert [line[5] for line in lines] == ["bench test", "refresh via component id"]
    assert all(len(line) == 6 for line in lines)


def test_trust_requires_reason_and_known_id(rig):
    missing = rig.capa("plugins", "trust", "tk")
    assert missing.returncode == 2  # seed 001: missing --reason is 2, not usage (64)
    assert "missing --reason" in missing.stderr
    proc = rig.capa("plugins", "trust", "nosuch", "--reason", "x")
    assert proc.returncode == 2
    assert "unknown plugin or component id 'nosuch'" in proc.stderr
    assert "tk, tk.quick" in proc.stderr
    assert not rig.lock.exists()


@pytest.mark.parametrize(
    "where",
    [
        "file/plugins.lock",  # the parent is a file: was exit 5 "FileExistsError"
        "file/deeper/plugins.lock",
    ],
)
def test_trust_lock_write_failure_is_one_line_exit_2(rig, where):
    (rig.tmp / "file").write_text("not a directory")
    target = rig.tmp / where
    proc = rig.capa("plugins", "trust", "tk", "--reason", "x", "--plugins-lock", str(target))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "internal error" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"capa: error: {target}: cannot write plugins.lock: ")
    assert not (rig.tmp / "plugins.lock").exists()


def test_trust_refuses_editable_and_modified_installs(rig):
    # the workspace's own plugins are editable installs
    proc = rig.capa("plugins", "trust", "watlow", "--reason", "x")
    assert proc.returncode == 2
    assert "cannot trust an editable install" in proc.stderr
    (rig.site / rig.module / "extra.py").write_text("")
    proc = rig.capa("plugins", "trust", "tk", "--reason", "x")
    assert proc.returncode == 2
    assert f"file not listed in RECORD: {rig.module}/extra.py" in proc.stderr
    assert not rig.canary.exists()


def test_untrust_revokes_and_journals(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    proc = rig.capa("plugins", "untrust", "tk.quick", "--reason", "retired")
    assert proc.returncode == 0, proc.stderr
    assert "tk" not in load_lock(rig.lock).plugins
    assert rig.journal()[-1][1:3] == ["revoke", "tk"]
    assert rig.journal()[-1][5] == "retired"
    proc = rig.capa("plugins", "untrust", "tk", "--reason", "again")
    assert proc.returncode == 2
    assert "is not in" in proc.stderr


def test_verify_reports_drift_without_importing(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    rig.canary.unlink()
    target = rig.site / rig.module / "plugin.py"
    target.write_bytes(target.read_bytes().replace(b"ran", b"rAn", 1))
    proc = rig.capa("plugins", "verify", "--json")
    assert proc.returncode == 3
    states = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert states["tk"]["state"] == "hash_mismatch"
    assert states["watlow"]["state"] == "missing_from_lock"
    assert not rig.canary.exists()


def test_verify_without_a_lock_is_exit_2(rig):
    proc = rig.capa("plugins", "verify")
    assert proc.returncode == 2
    assert "searched" in proc.stderr


def test_attestation_that_does_not_verify_is_refused(rig, sigstore_fixtures):
    wheel = sigstore_fixtures / "rfc8785-0.1.2-py3-none-any.whl"
    proc = rig.capa(
        "plugins", "trust", "tk", "--reason", "signed",
        "--wheel", str(wheel),
        "--attestation", str(wheel) + ".publish.attestation",
        "--identity", "william@yossarian.net",
        "--issuer", "https://github.com/login/oauth",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "signature verification failed" in proc.stderr
    assert not rig.lock.exists()
    proc = rig.capa("plugins", "trust", "tk", "--reason", "x", "--wheel", str(wheel))
    assert proc.returncode == 2
    assert "--wheel and --attestation go together" in proc.stderr


def test_list_shows_trust_state_in_production(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    proc = rig.capa("plugins", "list", "--json", CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["tk"]["trust"] == "trusted"
    assert rows["watlow"]["trust"] == "missing_from_lock"
    assert rows["watlow"]["status"] == "blocked"
    assert rows["capa"]["trust"] == "builtin"


# ---------------------------------------------------------------- production capa run


def test_production_without_a_lock_lists_searched_paths(rig):
    config = rig.experiment("tk.quick")
    proc = rig.capa("run", str(config), CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 2
    assert str(rig.tmp / "plugins.lock") in proc.stderr
    assert str(rig.tmp / "xdg" / "capa" / "plugins.lock") in proc.stderr
    assert not (rig.tmp / "runs").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version = 1\n[[plugins]\n", "malformed plugins.lock"),
        ("version = 99\n", "schema version 99 is newer"),
        (
            "version = 1\n" + DUP_ENTRY * 2,
            "duplicate plugin name 'a'",
        ),
    ],
)
def test_unusable_lock_is_exit_2_with_one_line(rig, text, needle):
    config = rig.experiment("tk.quick")
    (rig.tmp / "xdg" / "capa").mkdir(parents=True)
    lock = rig.tmp / "xdg" / "capa" / "plugins.lock"
    lock.write_text(text)
    proc = rig.capa("run", str(config), CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"plugins.lock (auto-discovered): {lock}" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (rig.tmp / "runs").exists()


def test_missing_flag_lock_is_exit_2(rig):
    config = rig.experiment("tk.quick")
    proc = rig.capa(
        "run", str(config), "--plugins-lock", "nope.lock", CAPA_PLUGIN_MODE="production"
    )
    assert proc.returncode == 2
    assert "nope.lock: no such file" in proc.stderr


def test_run_needing_a_blocked_plugin_is_refused_without_a_bundle(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    rig.canary.unlink()
    (rig.site / rig.module / "plugin.py").write_text("raise SystemExit('evil')\n")
    config = rig.experiment("tk.quick")
    proc = rig.capa("run", str(config), CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "plugins.lock (auto-discovered)" in proc.stdout
    reason = next(line for line in proc.stdout.splitlines() if line.startswith("exit_reason:"))
    assert "plugin_blocked: procedure 'tk.quick' is provided by plugin 'tk'" in reason
    assert "hash_mismatch" in reason
    assert not rig.canary.exists()
    assert not list((rig.tmp / "runs").glob("2*"))


def test_trusted_plugin_runs_in_production_and_manifest_records_trust(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    config = rig.experiment("tk.quick")
    proc = rig.capa(
        "run", str(config), "--plugins-lock", str(rig.lock), CAPA_PLUGIN_MODE="production"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "auto-discovered" not in proc.stdout  # named by the flag
    bundle = Path(
        next(line for line in proc.stdout.splitlines() if line.startswith("bundle:"))
        .split(":", 1)[1]
        .strip()
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    plugins = {p["name"]: p for p in manifest["plugins"]}
    lock = load_lock(rig.lock)
    assert plugins["tk"]["trust"] == "trusted"
    assert plugins["tk"]["record_digest"] == lock.plugins["tk"].record_digest
    assert plugins["watlow"]["trust"] == "missing_from_lock"
    assert plugins["watlow"]["status"] == "blocked"
    assert manifest["custom"]["plugins_lock"]["sha256"] == lock.sha256


def test_unknown_plugin_mode_is_refused(rig):
    proc = rig.capa("plugins", "list", CAPA_PLUGIN_MODE="prod")
    assert proc.returncode == 2
    assert "CAPA_PLUGIN_MODE='prod': expected 'dev' or 'production'" in proc.stderr


def test_dev_mode_list_shows_drift_against_a_found_lock(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    (rig.site / rig.module / "plugin.py").write_text("# changed\n")
    proc = rig.capa("plugins", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["tk"]["trust"] == "dev (hash_mismatch)"
    assert rows["tk"]["status"] == "loaded"  # dev mode still loads it


@pytest.mark.parametrize("attack", ["sourceless_pyc", "hashless_row"])
def test_verify_reports_the_dropped_file_and_production_never_runs_it(rig, attack):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    rig.canary.unlink()
    pkg = rig.site / rig.module / "plugin"
    pkg.mkdir()
    evil = f"import os\nopen(os.environ['{CANARY_ENV}'], 'a').write('EVIL\\n')\n"
    if attack == "sourceless_pyc":
        import importlib.util
        import marshal

        code = compile(evil, "<evil>", "exec")
        header = importlib.util.MAGIC_NUMBER + bytes(12)
        (pkg / "__init__.pyc").write_bytes(header + marshal.dumps(code))
        dropped = f"{rig.module}/plugin/__init__.pyc"
    else:
        (pkg / "__init__.py").write_text(evil)
        (record,) = rig.site.glob("tk_capa-*.dist-info/RECORD")
        record.write_text(record.read_text() + f"{rig.module}/plugin/__init__.py,,\n")
        dropped = f"{rig.module}/plugin/__init__.py"
    proc = rig.capa("plugins", "verify")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert dropped in proc.stdout
    config = rig.experiment("tk.quick")
    proc = rig.capa("run", str(config), CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert dropped in proc.stdout
    assert not rig.canary.exists()


def test_name_clash_refusal_names_the_locked_distribution(rig):
    assert rig.capa("plugins", "trust", "tk", "--reason", "a").returncode == 0
    impostor = f"imp_{uuid.uuid4().hex[:8]}"
    make_distribution(
        rig.site,
        "aa-impostor",  # sorts before tk-capa: loaded (and refused) first
        "9.9",
        files={
            f"{impostor}/__init__.py": "",
            f"{impostor}/plugin.py": plugin_source(impostor, "tk.quick"),
        },
        entry_points={"capa": {"tk": f"{impostor}.plugin"}},
    )
    rig.canary.unlink()
    config = rig.experiment("tk.quick")
    proc = rig.capa("run", str(config), CAPA_PLUGIN_MODE="production")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reason = next(line for line in proc.stdout.splitlines() if line.startswith("exit_reason:"))
    assert "procedure 'tk.quick' is provided by plugin 'tk' (tk-capa 1.0)" in reason
    assert "name_clash: plugin name 'tk' is also declared by aa-impostor 9.9" in reason
    assert not rig.canary.exists()
    proc = rig.capa("plugins", "verify", "--json")
    assert proc.returncode == 3
    states = {(p["name"], p["dist"]): p["state"] for p in json.loads(proc.stdout)["plugins"]}
    assert states[("tk", "aa-impostor")] == "version_mismatch"
    assert states[("tk", "tk-capa")] == "name_clash"
