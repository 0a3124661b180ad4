"""Plugins import only capa's public API (`capa`, `capa.testing`, `capa.runtime`,
`capa.embed`), never internals."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
ALLOWED = {"capa", "capa.testing", "capa.runtime", "capa.embed"}


def capa_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out += [(node.lineno, n) for n in names if n == "capa" or n.startswith("capa.")]
    return out


def test_plugin_sources_use_public_api_only():
    sources = sorted(PACKAGES.glob("*/src/**/*.py"))
    assert len(sources) >= 10, "expected the five plugin distributions' sources"
    offenders = [
        f"{p.relative_to(PACKAGES)}:{line}: {mod}"
        for p in sources
        for line, mod in capa_imports(p)
        if mod not in ALLOWED
    ]
    assert offenders == []


def test_every_plugin_distribution_is_complete():
    for pkg in ("watlow", "sartorius", "nidaq", "camera", "procedures", "gui", "report"):
        root = PACKAGES / f"capa-{pkg}"
        for rel in ("pyproject.toml", "README.md", "CHANGELOG.md", f"src/capa_{pkg}/plugin.py"):
            assert (root / rel).is_file(), f"{root.name} lacks {rel}"
        text = (root / "pyproject.toml").read_text()
        assert '"capa>=0.2,<0.3"' in text
        assert f'{pkg} = "capa_{pkg}.plugin"' in text
