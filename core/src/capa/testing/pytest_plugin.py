"""pytest plugin registered by capa (entry point ``pytest11``): fixtures and markers.

pytest imports this module in *every* session of an environment where capa is
installed, so it imports nothing of capa at module level; fixtures import what they need.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

HARDWARE_ENV = "CAPA_HARDWARE_TESTS"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``hardware`` marker so ``--strict-markers`` accepts it everywhere."""
    config.addinivalue_line(
        "markers", f"hardware: needs a real instrument; skipped unless {HARDWARE_ENV}=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip hardware tests unless the machine says it has the instruments."""
    if os.environ.get(HARDWARE_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"needs real hardware (set {HARDWARE_ENV}=1)")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def capa_host() -> PluginHost:
    """An isolated plugin host: core's built-in plugin only, no installed plugins."""
    from capa.plugins.host import PluginHost

    host = PluginHost()
    host.load(entry_points=False)
    return host


@pytest.fixture
def capa_site(tmp_path: Path) -> Iterator[Path]:
    """A temporary ``sys.path`` entry for throwaway distributions.

    Everything imported from it is removed from ``sys.modules`` afterwards, so one test's
    plugin module never leaks into the next.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    before = set(sys.modules)
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(site)):
                del sys.modules[name]
        importlib.invalidate_caches()


@pytest.fixture
def capa_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary runs root, also set as ``CAPA_RUNS_ROOT``."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("CAPA_RUNS_ROOT", str(root))
    return root
