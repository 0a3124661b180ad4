"""Production-mode admission: the pre-import gate the plugin host consults.

:class:`TrustGate` is passed to :meth:`capa.plugins.host.PluginHost.load` as ``admit``.
For each entry point it re-hashes the distribution's files and compares them with the
lock *before* the host imports anything; whatever does not match exactly is blocked
(``PluginStatus.BLOCKED`` with the drift as reason) and never imported. The gate keeps
its verdicts so that run preflight and the bundle manifest can say what was trusted.

Admitted plugins are then imported through :mod:`capa.trust.guard`: only the source files
the lock covers, re-hashed as they are read, never cached bytecode. Start-up hooks
(``.pth`` files, ``sitecustomize``) that differ from the lock's block every plugin; when two
distributions declare one plugin name, each is checked (and blocked) as itself, so a
refusal names the distribution the lock pins, not the impostor.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from capa.plugins.discovery import EntryPointInfo, iter_entry_points
from capa.trust.digest import module_tops
from capa.trust.drift import (
    PluginCheck,
    check_entry_point,
    hook_drift,
    missing_from_install,
    name_clashes,
)
from capa.trust.guard import ImportGuard, install_guard
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

    def __init__(self, lock: PluginsLock, guard: ImportGuard | None = None) -> None:
        self.lock = lock
        self.checks: dict[str, PluginCheck] = {}
        self.by_dist: dict[tuple[str, str], PluginCheck] = {}
        self.guard = guard
        self._hooks: list[str] | None = None
        self._clashes: dict[str, dict[str, list[EntryPointInfo]]] = {}

    def __call__(self, info: EntryPointInfo) -> str | None:
        """``None`` to admit ``info``, else the reason it is blocked."""
        if self._hooks is None:
            self._hooks = hook_drift(self.lock)
        if info.group not in self._clashes:
            self._clashes[info.group] = name_clashes(iter_entry_points(info.group))
        clash = self._clashes[info.group].get(info.name)
        check = check_entry_point(info, self.lock, hooks=self._hooks, clash=clash)
        self._record(check)
        for other in clash or ():
            if other.dist_name != info.dist_name:
                # The host refuses the later declarers of a clashing name without asking
                # the gate; check them here so each verdict names its own distribution.
                self._record(check_entry_point(other, self.lock, hooks=self._hooks, clash=clash))
        self._guard(info, check)
        return None if check.trusted else f"not trusted by plugins.lock: {check.reason()}"

    def _record(self, check: PluginCheck) -> None:
        """Keep one check per plugin name: the one of the distribution the lock pins."""
        self.by_dist[(check.name, check.dist)] = check
        entry = self.lock.plugins.get(check.name)
        current = self.checks.get(check.name)
        if current is None or (entry is not None and check.dist == entry.dist):
            self.checks[check.name] = check

    def _guard(self, info: EntryPointInfo, check: PluginCheck) -> None:
        if self.guard is None or info.dist is None:
            return
        installed = check.installed
        tops = module_tops(info.dist, info.value)
        if not check.trusted or installed is None:
            self.guard.guard(tops)  # nothing of a blocked plugin's packages may load
            return
        files = {
            os.path.realpath(str(info.dist.locate_file(rel))): sha
            for rel, sha in installed.hashes.items()
        }
        self.guard.guard(tops, files)

    def finish(self) -> None:
        """Record locked plugins that were never seen (``missing_from_install``)."""
        for name, entry in self.lock.plugins.items():
            if name not in self.checks:
                self.checks[name] = missing_from_install(entry)

    def check_of(self, name: str, dist: str) -> PluginCheck | None:
        """The verdict on plugin ``name`` as declared by distribution ``dist``."""
        return self.by_dist.get((name, dist)) or self.checks.get(name)

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
    gate = TrustGate(lock, install_guard())
    host.load(admit=gate)
    gate.finish()
    _GATES[host] = gate
    return host


def gate_for(host: PluginHost) -> TrustGate | None:
    """The gate ``host`` was loaded through, or ``None`` (dev mode)."""
    return _GATES.get(host)
