"""Plumbing shared by command modules."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["EARLY_SIGINT", "EarlySigint", "load_plugin_host"]


class EarlySigint:
    """SIGINT from process start until a run's own two-stage handler takes over.

    Installed by :func:`capa.cli.main.main` first thing, so a Ctrl-C is never lost, even
    when the parent started capa with SIGINT ignored (a shell's background job, ``nohup``):
    it raises ``KeyboardInterrupt`` (exit 130) like Python's default. ``capa run`` arms
    it: the first SIGINT is then only remembered (``received``) — never raised, since a
    KeyboardInterrupt raised inside an import leaves C extensions half-loaded ("cannot load
    module more than once") or is swallowed by importlib's lock callbacks (found by
    bench/fuzz_configs.py) — and ``capa run`` checks it between its phases: the run is not
    started (exit 1, seed 001) or stops as soon as its own handler is installed. A second
    SIGINT exits 130 at once, as the run's own handler does.
    """

    def __init__(self) -> None:
        self.armed = False
        self.received = False
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        """Take over SIGINT (main thread only; elsewhere Python allows no handler)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        self.armed = False
        self.received = False

    def uninstall(self) -> None:
        """Give SIGINT back to whoever had it (an embedding process, pytest)."""
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        self.armed = False

    def arm(self) -> None:
        """From now on remember the first SIGINT instead of raising."""
        self.armed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            raise KeyboardInterrupt
        if self.received:
            sys.stderr.write("\nSIGINT received again — exiting\n")
            sys.stderr.flush()
            os._exit(128 + signum)  # nothing has been written yet: nothing to finalize
        self.received = True
        sys.stderr.write("\nSIGINT received — stopping before the run starts\n")
        sys.stderr.flush()


EARLY_SIGINT = EarlySigint()
"""The process's early SIGINT handling (one per CLI process)."""

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
