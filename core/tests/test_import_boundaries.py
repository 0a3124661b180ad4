"""Core stays tiny: no plugin, no device library, nothing heavy on the start-up path."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE_SRC = Path(__file__).resolve().parents[1] / "src" / "capa"
FORBIDDEN_IN_CORE = ("serial", "pymodbus", "nidaqmx", "cv2")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_core_never_imports_plugins_or_device_libraries():
    offenders = []
    for path in sorted(CORE_SRC.rglob("*.py")):
        for lineno, module in imported_modules(path):
            top = module.split(".")[0]
            if top.startswith("capa_") or top in FORBIDDEN_IN_CORE:
                offenders.append(f"{path.relative_to(CORE_SRC)}:{lineno}: import {module}")
    assert offenders == []


def test_boundary_scan_detects_a_violation(tmp_path):
    # The scan above must be able to fail: prove it on a file that breaks the rule.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import serial.tools.list_ports\n    from capa_watlow import x\n")
    assert [m for _, m in imported_modules(bad)] == ["serial.tools.list_ports", "capa_watlow"]


PROBE = """
import json, sys
sys.argv = ["capa", *sys.argv[1:]]
from capa.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\n@@MODULES@@" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_loaded_by(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = proc.stderr.rindex("@@MODULES@@")
    return set(json.loads(proc.stderr[marker + len("@@MODULES@@") :]))


def heavy(modules: set[str]) -> set[str]:
    heavy_roots = {
        "pyarrow",
        "pydantic",
        "numpy",
        "pluggy",
        "structlog",
        "anyio",
        *FORBIDDEN_IN_CORE,
    }
    return {
        m
        for m in modules
        if m.split(".")[0] in heavy_roots
        or m.startswith(
            ("capa_", "capa.components", "capa.plugins.host", "capa.config", "capa.bundle")
        )
    }


def test_help_imports_nothing_heavy():
    loaded = modules_loaded_by("--help")
    assert "click" in loaded
    assert heavy(loaded) == set()


def test_version_imports_nothing_heavy_and_no_plugin():
    loaded = modules_loaded_by("version")
    assert "capa.plugins.discovery" in loaded
    assert heavy(loaded) == set()


def test_export_help_imports_nothing_heavy():
    loaded = modules_loaded_by("export", "--help")
    assert "capa.cli.export" in loaded
    assert heavy(loaded) == set()
