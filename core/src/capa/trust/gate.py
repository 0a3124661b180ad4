"""Production-mode admission: the pre-import gate the plugin host consults.

:class:`TrustGate` is passed to :meth:`capa.plugins.host.PluginHost.load` as ``admit``.
For each entry point it re-hashes the distribution's files and compares them with the
lock *before* the host imports anything; whatever does not match exactly is blocked
(``PluginStatus.BLOCKED`` with the drift as reason) and never imported. The gate keeps
its verdicts so that run preflight and the bundle manifest can say what was trusted.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from capa.plugins.discovery import EntryPointInfo
from capa.trust.drift import PluginCheck, check_entry_point, missing_from_install
from capa.trust.lockfile import PluginsLock

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["TrustGate", "gate_for", "load_trusted_host"]

_GATES: weakref.WeakKeyDictionary[PluginHost, TrustGate] = weakref.WeakKeyDictionary()


class TrustGate:
    """Admits exactly the plugins ``lock`` pins; remembers every verdict.

    Args:
        lock: the parsed ``plugins.lock``.
    """

    def __init__(self, lock: PluginsLock) -> None:
        self.lock = lock
        self.checks: dict[str, PluginCheck] = {}

    def __call__(self, info: EntryPointInfo) -> str | None:
        """``None`` to admit ``info``, else the reason it is blocked."""
        check = check_entry_point(info, self.lock)
        self.checks[info.name] = check
        return None if check.trusted else f"not trusted by plugins.lock: {check.reason()}"

    def finish(self) -> None:
        """Record locked plugins that were never seen (``missing_from_install``)."""
        for name, entry in self.lock.plugins.items():
            if name not in self.checks:
                self.checks[name] = missing_from_install(entry)

    def blocked(self) -> list[PluginCheck]:
        """Checks of installed plugins that were refused."""
        return [c for c in self.checks.values() if not c.trusted and c.installed is not None]

    def blocker_of(self, component_id: str) -> PluginCheck | None:
        """The blocked (or absent) locked plugin that would have provided ``component_id``."""
        entry = self.lock.owner_of(component_id)
        if entry is None:
            return None
        check = self.checks.get(entry.name)
        return None if check is None or check.trusted else check


def load_trusted_host(lock: PluginsLock, host: PluginHost | None = None) -> PluginHost:
    """A plugin host loaded through a :class:`TrustGate` for ``lock`` (production mode)."""
    from capa.plugins.host import PluginHost

    host = host if host is not None else PluginHost()
    gate = TrustGate(lock)
    host.load(admit=gate)
    gate.finish()
    _GATES[host] = gate
    return host


def gate_for(host: PluginHost) -> TrustGate | None:
    """The gate ``host`` was loaded through, or ``None`` (dev mode)."""
    return _GATES.get(host)
