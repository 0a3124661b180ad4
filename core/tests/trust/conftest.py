"""Fixtures for the trust tests: the recorded Sigstore fixtures and a network guard."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

SIGSTORE = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "sigstore"


@pytest.fixture
def sigstore_fixtures() -> Path:
    """``../shared/fixtures/sigstore`` beside the repository (skip if CI lacks it)."""
    path = SIGSTORE.resolve()
    if not (path / "README.md").is_file():
        pytest.skip(f"recorded Sigstore fixtures not found at {path}")
    return path


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Fail the test on any attempt to resolve a name or open a connection; fresh HOME."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # No cached TUF metadata may help: verification must use the pinned trust root alone.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield attempts
    assert not attempts, f"network was attempted: {attempts}"
