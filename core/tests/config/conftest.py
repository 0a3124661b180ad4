from __future__ import annotations

import pytest

import capa.cli.common

from . import components as tc


@pytest.fixture
def host():
    return tc.make_host()


@pytest.fixture
def cli_host(host, monkeypatch):
    """The CLI's plugin host replaced by the isolated test host."""
    monkeypatch.setattr(capa.cli.common, "_host", host)
    return host
