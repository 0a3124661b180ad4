"""Trusting, untrusting and locking plugins (what ``capa plugins trust/untrust/lock`` do).

Every change rewrites ``plugins.lock`` atomically and appends one line per plugin to
``plugins.lock.journal``. A plugin's files are hashed *before* it is imported, and only
the plugin being trusted is imported (to learn which components it provides) — unless the
id given is a component id that no lock entry knows, which can only be resolved by loading
every installed plugin.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from capa.errors import TrustError
from capa.plugins.discovery import EntryPointInfo, iter_entry_points
from capa.trust.digest import canonical_digest, covered, inspect_distribution, read_record
from capa.trust.hooks import current_hooks
from capa.trust.journal import append_journal
from capa.trust.lockfile import AttestationRecord, LockEntry, PluginsLock, load_lock, write_lock
from capa.trust.resolve import resolve_lock

__all__ = [
    "AttestationRequest",
    "lock_all",
    "lock_target",
    "read_lock_or_empty",
    "trust_plugin",
    "untrust_plugin",
    "wheel_digest",
]

GROUP = "capa"


@dataclass(frozen=True, slots=True)
class AttestationRequest:
    """A wheel, its attestation, and the signer it must come from."""

    wheel: Path
    attestation: Path
    policy: Any
    label: str


def lock_target(flag: Path | None) -> Path:
    """The lock to edit: ``flag``, else the one lock resolution finds, else ``./plugins.lock``."""
    if flag is not None:
        return flag
    return resolve_lock(None) or Path.cwd() / "plugins.lock"


def read_lock_or_empty(path: Path) -> PluginsLock:
    """The lock at ``path``, or a new one recording today's start-up hooks.

    An existing lock keeps the hooks it recorded (trusting one plugin must not quietly
    accept a ``.pth`` file someone added); ``capa plugins lock`` re-records them.
    """
    if path.exists():
        return load_lock(path)
    return PluginsLock(path=path, startup_hooks=tuple(current_hooks()))


def trust_plugin(
    ident: str, reason: str, lock_path: Path, attestation: AttestationRequest | None = None
) -> LockEntry:
    """Write or refresh the lock entry for plugin/component ``ident``; journal ``trust``."""
    lock = read_lock_or_empty(lock_path)
    infos = {i.name: i for i in iter_entry_points(GROUP)}
    name = _plugin_name(ident, lock, infos)
    info = infos[name]
    digest = _clean_digest(info)
    provided, failures = _provides({name})
    provides = provided.get(name)
    if provides is None:
        raise TrustError(f"plugin {name!r} did not load: {failures.get(name, '?')}")
    record = None
    if attestation is not None:
        record = _verified(attestation, digest, lock_path)
    elif (old := lock.plugins.get(name)) is not None and old.record_digest == digest:
        # Refreshing an entry whose bytes are unchanged keeps its proven provenance.
        record = old.attestation
    entry = LockEntry(
        name, info.dist_name, info.dist_version, info.value, digest, tuple(provides), record
    )
    write_lock(lock_path, lock.with_entry(entry))
    append_journal(
        lock_path, "trust", name, version=info.dist_version, digest=digest, reason=reason
    )
    return entry


def untrust_plugin(ident: str, reason: str, lock_path: Path) -> LockEntry:
    """Remove the entry for plugin/component ``ident``; journal ``revoke``."""
    if not lock_path.exists():
        raise TrustError(f"{lock_path}: no such plugins.lock")
    lock = load_lock(lock_path)
    entry = lock.plugins.get(ident) or lock.owner_of(ident)
    if entry is None:
        listing = ", ".join(sorted(lock.plugins)) or "none"
        raise TrustError(f"{ident!r} is not in {lock_path}; locked plugins: {listing}")
    write_lock(lock_path, lock.without(entry.name))
    append_journal(
        lock_path,
        "revoke",
        entry.name,
        version=entry.version,
        digest=entry.record_digest,
        reason=reason,
    )
    return entry


def lock_all(lock_path: Path, reason: str) -> tuple[list[LockEntry], dict[str, str]]:
    """Lock every installed plugin that can be trusted; return (entries, skipped → why)."""
    previous = read_lock_or_empty(lock_path)
    infos = {i.name: i for i in iter_entry_points(GROUP)}
    skipped: dict[str, str] = {}
    digests: dict[str, str] = {}
    for name, info in infos.items():
        try:
            digests[name] = _clean_digest(info)
        except TrustError as exc:
            skipped[name] = str(exc)
    provided, failures = _provides(set(digests))
    entries = []
    lock = PluginsLock(
        require_attestation=previous.require_attestation,
        path=lock_path,
        startup_hooks=tuple(current_hooks()),
    )
    for name, digest in sorted(digests.items()):
        if name not in provided:
            skipped[name] = f"did not load: {failures.get(name, '?')}"
            continue
        info = infos[name]
        entry = LockEntry(
            name, info.dist_name, info.dist_version, info.value, digest, tuple(provided[name])
        )
        entries.append(entry)
        lock = lock.with_entry(entry)
    write_lock(lock_path, lock)
    for entry in entries:
        append_journal(
            lock_path,
            "trust",
            entry.name,
            version=entry.version,
            digest=entry.record_digest,
            reason=reason,
        )
    return entries, skipped


def wheel_digest(wheel: Path) -> str:
    """The record digest the wheel's files will have once installed (same rules)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
            if len(records) != 1:
                raise TrustError(f"{wheel}: not a wheel (expected one .dist-info/RECORD)")
            entries = []
            for path, declared in read_record(zf.read(records[0]).decode("utf-8")):
                target = _installed_path(path)
                if declared and target is not None and covered(target):
                    entries.append((target, hashlib.sha256(zf.read(path)).hexdigest()))
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise TrustError(f"{wheel}: cannot read wheel: {exc}") from exc
    return canonical_digest(entries)


def _installed_path(path: str) -> str | None:
    parts = PurePosixPath(path).parts
    if parts and parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return path


def _plugin_name(ident: str, lock: PluginsLock, infos: dict[str, EntryPointInfo]) -> str:
    if ident in infos:
        return ident
    owner = lock.owner_of(ident)
    if owner is not None and owner.name in infos:
        return owner.name
    from capa.plugins.host import PluginHost

    host = PluginHost(builtin=False)
    host.load()
    components = {rec.id: rec.plugin for rec in host.components()}
    if ident in components and components[ident] in infos:
        return components[ident]
    available = sorted({*infos, *components})
    raise TrustError(
        f"unknown plugin or component id {ident!r}; available: {', '.join(available) or 'none'}"
    )


def _clean_digest(info: EntryPointInfo) -> str:
    if info.dist is None:
        raise TrustError(f"plugin {info.name!r}: its distribution's files cannot be located")
    found = inspect_distribution(info.dist, info.value)
    if found.editable:
        raise TrustError(
            f"plugin {info.name!r} ({info.dist_name}): cannot trust an editable install "
            f"({found.editable}); install it from a wheel"
        )
    if problems := found.problems():
        raise TrustError(
            f"plugin {info.name!r} ({info.dist_name}) differs from its RECORD: "
            + "; ".join(problems)
        )
    return found.digest


def _provides(names: set[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Import exactly ``names``: component ids per loaded plugin, reasons for the rest."""
    from capa.plugins.host import PluginHost
    from capa.plugins.registry import PluginStatus

    host = PluginHost(builtin=False)
    host.load(admit=lambda info: None if info.name in names else "not being trusted")
    out: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    for name in names:
        rec = host.plugins.get(name)
        if rec is not None and rec.status is PluginStatus.LOADED:
            out[name] = sorted({tag.split(":", 1)[1] for tag in rec.components})
        else:
            failures[name] = rec.reason if rec is not None else "not found"
    return out, failures


def _verified(req: AttestationRequest, digest: str, lock_path: Path) -> AttestationRecord:
    from capa.trust.sigstore import verify_attestation

    verified = verify_attestation(req.wheel, req.attestation, req.policy, req.label)
    if wheel_digest(req.wheel) != digest:
        raise TrustError(
            f"{req.wheel.name} is not what is installed: its files differ from the installed "
            "distribution's (reinstall from this wheel, or give the installed wheel)"
        )
    # Keep a copy beside the lock so the proof outlives the download directory.
    store = lock_path.parent / "plugins.attestations"
    store.mkdir(parents=True, exist_ok=True)
    stored = store / req.attestation.name
    if req.attestation.resolve() != stored.resolve():
        shutil.copyfile(req.attestation, stored)
    return AttestationRecord(
        verified.kind,
        req.wheel.name,
        verified.sha256,
        verified.identity,
        str(stored.relative_to(lock_path.parent)),
    )
