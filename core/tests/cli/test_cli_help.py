"""`capa --help` lists plugin commands, and from its cache imports nothing but stdlib basics.

Each case runs capa as a fresh process with a private cache directory, so whether the
help was rendered (click, plugins) or read from the cache is decided by the test alone.
The modules a process imported are the evidence — no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capa import __version__
from capa.testing import make_distribution

PROBE = """
import json, sys
from capa.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

# Imported by rendering the help (click, plugins); none of it by the cached path.
RENDER_ONLY = ("click", "pydantic", "pyarrow", "numpy", "rich", "pluggy", "yaml", "anyio")

ACME_CLI = '''
import click
import capa


@capa.hookimpl
def capa_register_cli(group):
    @group.group("acme")
    def acme():
        """{doc}"""
'''


class Help:
    """`capa --help` in a subprocess with its own cache and config directories."""

    def __init__(self, tmp: Path, site: Path | None = None) -> None:
        self.tmp = tmp
        self.site = site
        (tmp / "work").mkdir(exist_ok=True)

    def __call__(self, *args: str, **env: str) -> tuple[int, str, set[str]]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("CAPA_", "XDG_"))}
        environ.pop("COLUMNS", None)
        environ.update(XDG_CACHE_HOME=str(self.tmp / "cache"), XDG_CONFIG_HOME=str(self.tmp))
        if self.site is not None:
            environ["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.site), environ.get("PYTHONPATH")])
            )
        environ.update(env)
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, *(args or ("--help",))],
            capture_output=True,
            text=True,
            env=environ,
            cwd=self.tmp / "work",
            timeout=120,
            check=False,
        )
        marker = proc.stderr.rindex("\n@@")
        report = json.loads(proc.stderr[marker + 3 :])
        return report["code"], proc.stdout, set(report["modules"])


def rendered(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in RENDER_ONLY}


def test_cached_help_imports_no_click_and_nothing_heavy(tmp_path):
    capa_help = Help(tmp_path)
    code, first, modules = capa_help()
    assert code == 0
    assert "click" in modules  # nothing cached yet: rendered through click
    assert "Plugin commands:" in first
    assert "watlow" in first

    code, second, modules = capa_help()
    assert code == 0
    assert second == first  # byte for byte what click rendered
    assert rendered(modules) == set()
    assert "importlib.metadata" not in modules
    assert not {m for m in modules if m.startswith("capa_")}  # no plugin imported
    assert not {m for m in modules if m.startswith("capa.") and m != "capa.cli.helpcache"} - {
        "capa.cli",
        "capa.cli.main",
    }


@pytest.mark.parametrize("columns", ["60", "120"])
def test_cached_help_matches_the_rendering_at_each_width(tmp_path, columns):
    capa_help = Help(tmp_path)
    _, default, _ = capa_help()
    code, first, modules = capa_help(COLUMNS=columns)
    assert code == 0
    assert "click" in modules
    _, second, modules = capa_help(COLUMNS=columns)
    assert second == first
    assert rendered(modules) == set()
    assert first != default  # wrapped to 58 or 98 columns, not 78
    assert max(map(len, first.splitlines())) <= min(int(columns), 100)


def test_short_h_and_version_need_no_click(tmp_path):
    capa_help = Help(tmp_path)
    capa_help()  # warm the cache
    _, long_form, _ = capa_help("--help")
    code, short, modules = capa_help("-h")
    assert code == 0
    assert short == long_form
    assert rendered(modules) == set()
    code, version, modules = capa_help("--version")
    assert code == 0
    assert version == f"capa, version {__version__}\n"
    assert rendered(modules) == set()


def test_quick_version_text_is_clicks(tmp_path):
    from click.testing import CliRunner

    from capa.cli.root import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    _, quick, _ = Help(tmp_path)("-V")
    assert quick == result.output


def test_a_new_plugin_and_an_edited_plugin_refresh_the_cached_help(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    capa_help = Help(tmp_path, site)
    _, before, _ = capa_help()
    _, cached, modules = capa_help()
    assert cached == before
    assert "acme" not in before
    assert rendered(modules) == set()

    make_distribution(
        site,
        "acme-capa",
        files={"acme_cli/__init__.py": "", "acme_cli/plugin.py": ACME_CLI.format(doc="Acme v1.")},
        entry_points={"capa": {"acme": "acme_cli.plugin"}},
    )
    code, after, modules = capa_help()
    assert code == 0
    assert "click" in modules
    assert "acme       Acme v1." in after

    plugin = site / "acme_cli" / "plugin.py"
    plugin.write_text(ACME_CLI.format(doc="Acme, second edition."))
    stat = plugin.stat()
    os.utime(plugin, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse mtime clocks
    _, edited, _ = capa_help()
    assert "Acme, second edition." in edited
    _, again, modules = capa_help()
    assert again == edited
    assert rendered(modules) == set()


def test_an_unreadable_cache_file_is_rendered_over(tmp_path):
    capa_help = Help(tmp_path)
    _, good, _ = capa_help()
    (cache,) = (tmp_path / "cache" / "capa").iterdir()
    cache.write_bytes(b"\xff\xfe not text")
    code, repaired, modules = capa_help()
    assert code == 0
    assert repaired == good
    assert "click" in modules
    _, cached, modules = capa_help()
    assert cached == good
    assert rendered(modules) == set()


def test_unwritable_cache_still_prints_the_help(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    capa_help = Help(tmp_path)
    code, text, modules = capa_help()
    assert code == 0
    assert "Commands:" in text
    assert "click" in modules
    code, again, modules = capa_help()
    assert code == 0
    assert again == text
    assert "click" in modules


CANARY_CLI = '''
import os

with open(os.environ["CANARY"], "a", encoding="utf-8") as fh:
    fh.write("{name} imported\\n")

import capa


@capa.hookimpl
def capa_register_cli(group):
    @group.command("{name}cmd")
    def cmd():
        """The {name} plugin's command."""
'''


def test_production_help_lists_only_trusted_plugin_commands(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for name in ("good", "evil"):
        make_distribution(
            site,
            f"{name}-capa",
            files={f"{name}_cli.py": CANARY_CLI.format(name=name)},
            entry_points={"capa": {name: f"{name}_cli"}},
        )
    canary = tmp_path / "canary.txt"
    capa_help = Help(tmp_path, site)
    prod = {"CAPA_PLUGIN_MODE": "production", "CANARY": str(canary)}

    # No lock: the built-in commands, and why no plugin command is listed; nothing imported.
    code, text, modules = capa_help(**prod)
    assert code == 0
    assert "validate" in text
    assert "Plugin commands not listed: production mode" in text
    assert not canary.exists()
    assert not {"good_cli", "evil_cli"} & modules

    code, out, _ = capa_help(
        "plugins", "trust", "good", "--reason", "test", "--plugins-lock", "plugins.lock", **prod
    )
    assert code == 0, out
    canary.unlink()  # trusting imports the plugin once to see what it provides

    for _ in range(2):  # rendered through the gate, then from the cache
        code, text, modules = capa_help(**prod)
        assert code == 0
        assert "goodcmd" in text
        assert "evilcmd" not in text
        assert "evil_cli" not in modules
        assert "evil" not in (canary.read_text() if canary.exists() else "")
    assert rendered(modules) == set()
    assert "good_cli" not in modules

    code, _, modules = capa_help("evilcmd", **prod)
    assert code == 64
    assert "evil_cli" not in modules
    assert "evil" not in canary.read_text()

    code, dev, _ = capa_help(CANARY=str(canary))  # dev mode: every plugin, its own cache
    assert code == 0
    assert "goodcmd" in dev
    assert "evilcmd" in dev
