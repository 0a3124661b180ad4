"""Comparing what is installed with what ``plugins.lock`` pins, without importing."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from capa.plugins.discovery import EntryPointInfo
from capa.trust.digest import Installed, inspect_distribution
from capa.trust.hooks import compare_hooks, current_hooks
from capa.trust.lockfile import LockEntry, PluginsLock

__all__ = [
    "Drift",
    "DriftKind",
    "PluginCheck",
    "check_entry_point",
    "check_installed",
    "hook_drift",
    "name_clashes",
]


class DriftKind(enum.StrEnum):
    """Ways an installed plugin can differ from its lock entry."""

    MISSING_FROM_LOCK = "missing_from_lock"
    """Installed, but the lock has no entry of that name."""
    MISSING_FROM_INSTALL = "missing_from_install"
    """Locked, but no installed entry point has that name."""
    VERSION_MISMATCH = "version_mismatch"
    """Distribution name or version differs from the lock's."""
    HASH_MISMATCH = "hash_mismatch"
    """The installed files (or files added next to them) differ from the pinned digest."""
    ENTRY_POINT_MISMATCH = "entry_point_mismatch"
    """The entry point names a different module/object than the lock's."""
    EDITABLE = "editable"
    """An editable (development) install: its code is not the pinned bytes."""
    ATTESTATION_MISSING = "attestation_missing"
    """The lock requires attestations and this entry has none."""
    STARTUP_HOOK = "startup_hook"
    """A ``.pth`` file or customize module was added or changed since locking."""
    NAME_CLASH = "name_clash"
    """Another installed distribution declares the same plugin name."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference, with a sentence saying exactly what differs."""

    kind: DriftKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


@dataclass(slots=True)
class PluginCheck:
    """The verdict on one plugin (installed, locked, or both).

    Attributes:
        name: plugin (entry-point) name.
        dist: installed distribution name (or the lock's, if not installed).
        version: installed version (or the lock's).
        entry: the lock entry, if any.
        installed: the digest inspection, if installed.
        drifts: every difference; empty means trusted.
    """

    name: str
    dist: str
    version: str
    entry: LockEntry | None
    installed: Installed | None
    drifts: list[Drift] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        """True when the plugin may be imported in production mode."""
        return not self.drifts and self.entry is not None and self.installed is not None

    @property
    def state(self) -> str:
        """``trusted`` or the first drift kind (``hash_mismatch``, ...)."""
        return "trusted" if self.trusted else self.drifts[0].kind.value

    def reason(self) -> str:
        """One line naming every drift, for ``PluginStatus.BLOCKED`` and exit reasons."""
        return "; ".join(str(d) for d in self.drifts) or "trusted"


def hook_drift(lock: PluginsLock) -> list[str]:
    """How this interpreter's start-up hooks differ from those ``lock`` recorded."""
    return compare_hooks(list(lock.startup_hooks), current_hooks())


def name_clashes(infos: Iterable[EntryPointInfo]) -> dict[str, list[EntryPointInfo]]:
    """Plugin names that more than one distribution declares, with every declarer."""
    by_name: dict[str, list[EntryPointInfo]] = {}
    for info in infos:
        by_name.setdefault(info.name, []).append(info)
    return {name: found for name, found in by_name.items() if len({i.dist_name for i in found}) > 1}


def check_entry_point(
    info: EntryPointInfo,
    lock: PluginsLock,
    *,
    hooks: list[str] | None = None,
    clash: list[EntryPointInfo] | None = None,
) -> PluginCheck:
    """Compare one discovered entry point with the lock; reads files, imports nothing.

    Args:
        info: the entry point.
        lock: the lock.
        hooks: :func:`hook_drift` of the lock (computed here if ``None``).
        clash: every entry point declaring ``info.name`` when several distributions do.
    """
    entry = lock.plugins.get(info.name)
    installed = inspect_distribution(info.dist, info.value) if info.dist is not None else None
    check = PluginCheck(info.name, info.dist_name, info.dist_version, entry, installed)
    if installed is None:
        check.drifts.append(
            Drift(DriftKind.HASH_MISMATCH, "the distribution's files cannot be located")
        )
    elif installed.editable:
        check.drifts.append(Drift(DriftKind.EDITABLE, installed.editable))
    if entry is None:
        check.drifts.insert(
            0,
            Drift(
                DriftKind.MISSING_FROM_LOCK,
                f"{info.dist_name} {info.dist_version} is installed but not in the lock",
            ),
        )
        _environment_drift(check, info, lock, hooks, clash)
        return check
    if (info.dist_name, info.dist_version) != (entry.dist, entry.version):
        check.drifts.append(
            Drift(
                DriftKind.VERSION_MISMATCH,
                f"installed {info.dist_name} {info.dist_version}, "
                f"locked {entry.dist} {entry.version}",
            )
        )
    if info.value != entry.entry_point:
        check.drifts.append(
            Drift(
                DriftKind.ENTRY_POINT_MISMATCH,
                f"entry point {info.value!r}, locked {entry.entry_point!r}",
            )
        )
    if installed is not None and not installed.editable:
        problems = installed.problems()
        if installed.digest != entry.record_digest or problems:
            detail = "; ".join(problems) or (
                f"record digest {installed.digest[:19]}…, locked {entry.record_digest[:19]}…"
            )
            check.drifts.append(Drift(DriftKind.HASH_MISMATCH, detail))
    if lock.require_attestation and entry.attestation is None:
        check.drifts.append(
            Drift(DriftKind.ATTESTATION_MISSING, "the lock requires an attestation; none recorded")
        )
    _environment_drift(check, info, lock, hooks, clash)
    return check


def _environment_drift(
    check: PluginCheck,
    info: EntryPointInfo,
    lock: PluginsLock,
    hooks: list[str] | None,
    clash: list[EntryPointInfo] | None,
) -> None:
    if clash:
        others = [f"{i.dist_name} {i.dist_version}" for i in clash if i.dist_name != info.dist_name]
        check.drifts.append(
            Drift(
                DriftKind.NAME_CLASH,
                f"plugin name {info.name!r} is also declared by {', '.join(others)}",
            )
        )
    problems = hook_drift(lock) if hooks is None else hooks
    if problems:
        check.drifts.append(
            Drift(
                DriftKind.STARTUP_HOOK,
                "; ".join(problems) + " (re-lock with `capa plugins lock` if intended)",
            )
        )


def check_installed(infos: Iterable[EntryPointInfo], lock: PluginsLock) -> list[PluginCheck]:
    """Every installed entry point checked against the lock, plus locked-but-absent ones.

    With a name clash, every declaring distribution gets its own check (and a
    ``name_clash`` drift), each attributed to its own distribution.
    """
    infos = list(infos)
    hooks = hook_drift(lock)
    clashes = name_clashes(infos)
    checks = [
        check_entry_point(info, lock, hooks=hooks, clash=clashes.get(info.name)) for info in infos
    ]
    seen = {c.name for c in checks}
    for name, entry in sorted(lock.plugins.items()):
        if name not in seen:
            checks.append(missing_from_install(entry))
    return sorted(checks, key=lambda c: c.name)


def missing_from_install(entry: LockEntry) -> PluginCheck:
    """The verdict for a locked plugin that no installed entry point provides."""
    check = PluginCheck(entry.name, entry.dist, entry.version, entry, None)
    check.drifts.append(
        Drift(
            DriftKind.MISSING_FROM_INSTALL,
            f"locked {entry.dist} {entry.version} is not installed",
        )
    )
    return check
