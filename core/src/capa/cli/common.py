"""Plumbing shared by command modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["load_plugin_host"]

_host: PluginHost | None = None


def load_plugin_host() -> PluginHost:
    """The process's plugin host, loaded on first use (commands share one)."""
    global _host  # noqa: PLW0603 - one host per CLI process, built lazily
    if _host is None:
        from capa.plugins.host import PluginHost

        host = PluginHost()
        host.load()
        _host = host
    return _host
