"""``plugins.lock``: the list of plugins a lab administrator trusts, at exact bytes.

The file is TOML with ``version = 1``, an optional top-level ``require_attestation``, one
``[[plugins]]`` table per trusted plugin and one ``[[startup_hooks]]`` table (``name``,
``sha256``) per ``.pth`` file or customize module the interpreter runs at start-up
(:mod:`capa.trust.hooks`; a lock without any records that there are none). Reading is
strict — an unknown key, a missing field, a duplicate plugin name or a newer schema
version is refused with a :class:`~capa.errors.TrustError` naming the file (exit 2) —
because a lock that is read leniently is a lock that can be misread.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from capa.errors import TrustError
from capa.trust.hooks import StartupHook

__all__ = [
    "LOCK_VERSION",
    "AttestationRecord",
    "LockEntry",
    "PluginsLock",
    "dump_lock",
    "file_sha256",
    "load_lock",
    "parse_lock",
    "write_lock",
]

LOCK_VERSION = 1
"""Schema version this capa reads and writes."""

_ENTRY_KEYS = {"name", "dist", "version", "entry_point", "record_digest", "provides"}
_ATTESTATION_KEYS = {"kind", "wheel", "wheel_sha256", "identity", "bundle"}


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """Where a trusted plugin's wheel came from, as proven by a Sigstore signature.

    Attributes:
        kind: ``pep740`` (a PyPI publish attestation) or ``sigstore-bundle``.
        wheel: file name of the verified wheel.
        wheel_sha256: sha256 of that wheel file.
        identity: the signer identity the certificate was checked against
            (``github:OWNER/REPO/WORKFLOW``, ``gitlab:...`` or ``IDENTITY @ ISSUER``).
        bundle: path of the stored attestation / Sigstore bundle.
    """

    kind: str
    wheel: str
    wheel_sha256: str
    identity: str
    bundle: str


@dataclass(frozen=True, slots=True)
class LockEntry:
    """One trusted plugin.

    Attributes:
        name: entry-point name (the plugin's name).
        dist: distribution name as its metadata spells it.
        version: exact distribution version.
        entry_point: entry-point value (``module`` or ``module:attr``).
        record_digest: :func:`capa.trust.digest.record_digest` of the installed files.
        provides: ids of the components the plugin registered when it was trusted.
        attestation: signature provenance, when the wheel was verified.
    """

    name: str
    dist: str
    version: str
    entry_point: str
    record_digest: str
    provides: tuple[str, ...] = ()
    attestation: AttestationRecord | None = None


@dataclass(frozen=True, slots=True)
class PluginsLock:
    """A parsed ``plugins.lock``.

    Attributes:
        plugins: entries by plugin name.
        require_attestation: admit only plugins whose entry has an attestation.
        path: the file it was read from, if any.
        sha256: sha256 of that file's bytes (recorded in run manifests).
        startup_hooks: the start-up hooks the environment had when it was locked.
    """

    plugins: dict[str, LockEntry] = field(default_factory=dict)
    require_attestation: bool = False
    path: Path | None = None
    sha256: str = ""
    startup_hooks: tuple[StartupHook, ...] = ()

    def with_entry(self, entry: LockEntry) -> PluginsLock:
        """A copy with ``entry`` added or replacing the entry of the same name."""
        return replace(self, plugins={**self.plugins, entry.name: entry})

    def without(self, name: str) -> PluginsLock:
        """A copy without the entry ``name``."""
        return replace(self, plugins={k: v for k, v in self.plugins.items() if k != name})

    def owner_of(self, component_id: str) -> LockEntry | None:
        """The entry whose ``provides`` lists ``component_id``."""
        return next((e for e in self.plugins.values() if component_id in e.provides), None)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_lock(path: Path) -> PluginsLock:
    """Read and validate ``path``; every problem is one :class:`TrustError` line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"{path}: cannot read plugins.lock: {exc.strerror or exc}") from exc
    lock = parse_lock(raw, str(path))
    return replace(lock, path=path, sha256=hashlib.sha256(raw).hexdigest())


def parse_lock(raw: bytes, where: str = "plugins.lock") -> PluginsLock:
    """Parse lock file bytes; ``where`` names the file in error messages."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"{where}: malformed plugins.lock: {exc}") from exc
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TrustError(f"{where}: malformed plugins.lock: `version` must be an integer")
    if version > LOCK_VERSION:
        raise TrustError(
            f"{where}: plugins.lock schema version {version} is newer than this capa "
            f"understands ({LOCK_VERSION}); upgrade capa or re-create the lock"
        )
    if version < LOCK_VERSION:
        raise TrustError(f"{where}: unsupported plugins.lock schema version {version}")
    unknown = set(data) - {"version", "require_attestation", "plugins", "startup_hooks"}
    if unknown:
        raise TrustError(f"{where}: malformed plugins.lock: unknown key(s) {sorted(unknown)}")
    require = data.get("require_attestation", False)
    if not isinstance(require, bool):
        raise TrustError(f"{where}: malformed plugins.lock: `require_attestation` must be a bool")
    tables = data.get("plugins", [])
    if not isinstance(tables, list):
        raise TrustError(f"{where}: malformed plugins.lock: `plugins` must be [[plugins]] tables")
    entries: dict[str, LockEntry] = {}
    for i, table in enumerate(tables):
        entry = _entry(table, f"{where}: plugins[{i}]")
        if entry.name in entries:
            raise TrustError(f"{where}: duplicate plugin name {entry.name!r} in plugins.lock")
        entries[entry.name] = entry
    return PluginsLock(entries, require, startup_hooks=_hooks(data.get("startup_hooks", []), where))


def _hooks(tables: Any, where: str) -> tuple[StartupHook, ...]:
    if not isinstance(tables, list):
        raise TrustError(f"{where}: malformed plugins.lock: `startup_hooks` must be tables")
    hooks: dict[str, StartupHook] = {}
    for i, table in enumerate(tables):
        if (
            not isinstance(table, dict)
            or set(table) != {"name", "sha256"}
            or not all(isinstance(v, str) and v for v in table.values())
        ):
            raise TrustError(
                f"{where}: startup_hooks[{i}]: malformed entry: needs exactly the non-empty "
                "string keys ['name', 'sha256']"
            )
        if table["name"] in hooks:
            raise TrustError(f"{where}: duplicate start-up hook {table['name']!r}")
        hooks[table["name"]] = StartupHook(table["name"], table["sha256"])
    return tuple(sorted(hooks.values()))


def _entry(table: Any, where: str) -> LockEntry:
    if not isinstance(table, dict):
        raise TrustError(f"{where}: malformed entry: expected a table")
    missing = sorted(_ENTRY_KEYS - {"provides"} - set(table))
    unknown = sorted(set(table) - _ENTRY_KEYS - {"attestation"})
    if missing or unknown:
        parts = [f"missing {missing}"] if missing else []
        parts += [f"unknown {unknown}"] if unknown else []
        what = "; ".join(parts)
        raise TrustError(f"{where}: malformed entry: {what}")
    values = {}
    for key in ("name", "dist", "version", "entry_point", "record_digest"):
        value = table[key]
        if not isinstance(value, str) or not value:
            raise TrustError(f"{where}.{key}: malformed entry: must be a non-empty string")
        values[key] = value
    if not values["record_digest"].startswith("sha256:"):
        raise TrustError(f"{where}.record_digest: malformed entry: expected 'sha256:<hex>'")
    provides = table.get("provides", [])
    if not isinstance(provides, list) or not all(isinstance(p, str) for p in provides):
        raise TrustError(f"{where}.provides: malformed entry: must be a list of strings")
    attestation = None
    if "attestation" in table:
        att = table["attestation"]
        if (
            not isinstance(att, dict)
            or set(att) != _ATTESTATION_KEYS
            or not all(isinstance(v, str) for v in att.values())
        ):
            raise TrustError(
                f"{where}.attestation: malformed entry: needs exactly the string keys "
                f"{sorted(_ATTESTATION_KEYS)}"
            )
        attestation = AttestationRecord(**att)
    return LockEntry(provides=tuple(provides), attestation=attestation, **values)


def dump_lock(lock: PluginsLock) -> str:
    """The TOML text of ``lock``, entries sorted by name (stable diffs)."""
    lines = [
        "# plugins.lock: plugins trusted to run in production mode (CAPA_PLUGIN_MODE=production).",
        "# Written by `capa plugins trust` / `capa plugins lock`; history in plugins.lock.journal.",
        f"version = {LOCK_VERSION}",
        f"require_attestation = {'true' if lock.require_attestation else 'false'}",
    ]
    for name in sorted(lock.plugins):
        e = lock.plugins[name]
        lines += ["", "[[plugins]]"]
        lines += [
            f"{key} = {_str(getattr(e, key))}"
            for key in ("name", "dist", "version", "entry_point", "record_digest")
        ]
        lines.append(f"provides = {_list(e.provides)}")
        if e.attestation is not None:
            lines.append("[plugins.attestation]")
            lines += [
                f"{key} = {_str(getattr(e.attestation, key))}" for key in sorted(_ATTESTATION_KEYS)
            ]
    for hook in lock.startup_hooks:
        lines += ["", "[[startup_hooks]]", f"name = {_str(hook.name)}"]
        lines.append(f"sha256 = {_str(hook.sha256)}")
    return "\n".join(lines) + "\n"


def write_lock(path: Path, lock: PluginsLock) -> PluginsLock:
    """Write ``lock`` to ``path`` atomically (temp file, fsync, rename); return it re-read."""
    text = dump_lock(lock).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".plugins.lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return load_lock(path)


def _str(value: str) -> str:
    # JSON string escapes (\" \\ \n \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=True)


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_str(v) for v in values) + "]"
