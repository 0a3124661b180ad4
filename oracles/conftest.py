"""Oracle tests: capa's drivers and simulators against independent, hardware-validated code.

These tests run only in `nox -s oracles` (Python 3.13), which installs the oracle
libraries (watlowlib, sartoriuslib, anymodbus, anyserial) from PyPI. They are test
oracles, never runtime dependencies of capa. The directory is outside the default
`testpaths`, so the ordinary test sessions never collect it; inside the oracle session a
missing oracle library is an error, not a skip.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pytest

ORACLES = ("watlowlib", "sartoriuslib", "anymodbus", "anyserial")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name every oracle library and its version at the top of the test output."""
    found = []
    for name in ORACLES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} MISSING")
    return ["oracles: " + ", ".join(found)]


def pytest_configure(config: pytest.Config) -> None:
    """Fail the session at once when an oracle library is not installed."""
    missing = []
    for name in ORACLES:
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(name)
    if missing:
        raise pytest.UsageError(
            f"oracle libraries not installed: {', '.join(missing)} (run `nox -s oracles`)"
        )
