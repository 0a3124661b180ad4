"""Plumbing shared by command modules."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["load_plugin_host"]

_host: PluginHost | None = None


def load_plugin_host(lock: Path | None = None) -> PluginHost:
    """The process's plugin host, loaded on first use (commands share one).

    In production mode (``CAPA_PLUGIN_MODE=production``) plugins pass through the
    ``plugins.lock`` gate before anything is imported: ``lock`` if given, else the lock
    found by auto-discovery (seed 000). No lock, or an unusable one, raises
    :class:`~capa.errors.TrustError` (exit 2).
    """
    global _host  # noqa: PLW0603 - one host per CLI process, built lazily
    if _host is None:
        from capa.plugins.host import PluginHost
        from capa.trust.resolve import is_production

        if is_production():
            from capa.trust.gate import load_trusted_host
            from capa.trust.lockfile import load_lock
            from capa.trust.resolve import no_lock_error, resolve_lock

            path = resolve_lock(lock)
            if path is None:
                raise no_lock_error()
            _host = load_trusted_host(load_lock(path))
        else:
            host = PluginHost()
            host.load()
            _host = host
    return _host
