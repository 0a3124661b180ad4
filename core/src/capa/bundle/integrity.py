"""``manifest.sha256``: writing it and checking a bundle against it.

The file uses GNU ``sha256sum`` text format — ``<64 hex>  <relative path>`` per line, one
line per regular file of the bundle except ``manifest.sha256`` itself, sorted by relative
path (``/``-separated) — so ``cd <bundle> && sha256sum -c manifest.sha256`` works with no
capa installed. Names containing a backslash or newline use sha256sum's escaped form.

Verification outcomes (``integrity.status``):
``ok`` every listed file exists with its hash and nothing else is there;
``mismatch`` a listed file changed or is missing (or the list itself is malformed);
``partial`` the listed files are intact but files were added that the list does not cover.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.manifest import IntegrityStatus
from capa.bundle.paths import CHECKSUMS_FILE

__all__ = [
    "VerifyResult",
    "bundle_files",
    "format_checksums",
    "hash_file",
    "parse_checksums",
    "verify_bundle",
    "write_checksums",
]

_CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    """SHA-256 of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(bundle: Path) -> tuple[list[str], list[str]]:
    """Relative paths of the regular files in ``bundle`` and of anything else found.

    ``manifest.sha256`` is excluded. Symbolic links and other non-regular entries are not
    hashed (a link could point outside the bundle); they are returned as ``others`` so
    verification can report them as extra content.
    """
    files: list[str] = []
    others: list[str] = []
    for root, dirs, names in os.walk(bundle):
        rel_root = Path(root).relative_to(bundle)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                others.append((rel_root / name).as_posix())
        for name in names:
            full = Path(root) / name
            rel = (rel_root / name).as_posix()
            if rel == CHECKSUMS_FILE:
                continue
            if full.is_symlink() or not full.is_file():
                others.append(rel)
            else:
                files.append(rel)
    return sorted(files), sorted(others)


def _escape(name: str) -> tuple[str, str]:
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return "\\", escaped
    return "", name


def format_checksums(hashes: dict[str, str]) -> bytes:
    """``sha256sum`` text for ``{relative path: hex digest}``, sorted by path."""
    lines = []
    for rel in sorted(hashes):
        prefix, name = _escape(rel)
        lines.append(f"{prefix}{hashes[rel]}  {name}\n")
    return "".join(lines).encode("utf-8")


def parse_checksums(data: bytes | str) -> tuple[list[tuple[str, str]], list[int]]:
    """Parse ``sha256sum`` output exactly as GNU ``sha256sum -c`` does (coreutils 9).

    Returns ``(path, lowercase hex)`` for every well-formed line, in file order and with
    duplicates kept, and the numbers of the lines that are not. See :mod:`capa.bundle.gnusum`.
    """
    from capa.bundle.gnusum import parse_gnu_checksums

    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return parse_gnu_checksums(raw)


Known = Mapping[str, tuple[str, int, int, int]]
"""Relative path -> (sha256, size, mtime_ns, inode) of files hashed while they were written."""


def _known_digest(bundle: Path, rel: str, known: Known | None) -> str | None:
    """The recorded digest of ``rel`` if the file is still that file (size, mtime, inode)."""
    if not known or rel not in known:
        return None
    digest, size, mtime_ns, inode = known[rel]
    try:
        st = os.lstat(bundle / rel)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns, st.st_ino) != (
        size,
        mtime_ns,
        inode,
    ):
        return None
    return digest


def write_checksums(bundle: Path, known: Known | None = None) -> dict[str, str]:
    """Hash every regular file of ``bundle`` and atomically write ``manifest.sha256``.

    A file in ``known`` whose size, mtime and inode are unchanged is not read: its digest
    was computed from its bytes as they were written (:mod:`capa.bundle.tables`).
    """
    files, _ = bundle_files(bundle)
    hashes = {rel: _known_digest(bundle, rel, known) or hash_file(bundle / rel) for rel in files}
    atomic_write_bytes(bundle / CHECKSUMS_FILE, format_checksums(hashes))
    return hashes


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking a bundle against its ``manifest.sha256``.

    Attributes:
        status: ``ok``, ``mismatch``, ``partial``, or ``unknown`` when the bundle has no
            ``manifest.sha256`` (it was never sealed).
        changed: listed files whose content hash differs.
        missing: listed files that no longer exist.
        extra: files (or links) present but not listed.
        malformed_lines: line numbers of ``manifest.sha256`` that could not be parsed.
        checked: number of listed files whose hash matched.
        refused: listed names that are not regular files inside the bundle (a symbolic
            link, a path leaving the bundle, a FIFO, ...), or a ``manifest.sha256`` that
            is itself not a regular file, each with the reason.
    """

    status: IntegrityStatus
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)
    checked: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the bundle is exactly what was sealed."""
        return self.status is IntegrityStatus.OK

    def describe(self) -> str:
        """One human line: the status and every offending file."""
        parts = [self.status.value]
        if self.status is IntegrityStatus.UNKNOWN:
            parts.append(f"no {CHECKSUMS_FILE} (bundle not sealed)")
        if self.changed:
            parts.append("changed: " + ", ".join(self.changed))
        if self.missing:
            parts.append("missing: " + ", ".join(self.missing))
        if self.refused:
            parts.append("refused: " + ", ".join(self.refused))
        if self.extra:
            parts.append("not in manifest.sha256: " + ", ".join(self.extra))
        if self.malformed_lines:
            lines = ", ".join(str(n) for n in self.malformed_lines)
            parts.append(f"{CHECKSUMS_FILE} lines not in sha256sum format: {lines}")
        return "; ".join(parts)


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
"""Never follow a final symbolic link; never block opening a FIFO or device."""


def _read_listing(path: Path) -> bytes | str:
    """The bytes of ``manifest.sha256``, or why it cannot be trusted as the list."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            return f"{CHECKSUMS_FILE} is a symbolic link"
        return f"{CHECKSUMS_FILE}: {exc.strerror or exc}"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return f"{CHECKSUMS_FILE} is not a regular file"
        return f.read()


def _unsafe(bundle_real: str, bundle: Path, name: str) -> str:
    """Why a listed name is not a plain relative path to a file inside the bundle."""
    if not name or name == "-":
        return "not a file name"
    if name.startswith("/"):
        return "absolute path"
    if ".." in name.split("/"):
        return "path leaves the bundle ('..')"
    expected = os.path.normpath(os.path.join(bundle_real, name))
    if os.path.realpath(bundle / name) != expected:
        return "symbolic link in the path"
    return ""


def _hash_listed(bundle: Path, name: str) -> tuple[str, tuple[int, int]] | str:
    """``(sha256, (dev, inode))`` of a listed regular file, ``""`` if absent, else why not."""
    try:
        fd = os.open(bundle / name, _OPEN_FLAGS)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return exc.strerror or str(exc)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        return hashlib.file_digest(f, "sha256").hexdigest(), (st.st_dev, st.st_ino)


def verify_bundle(bundle: Path, known: Known | None = None) -> VerifyResult:
    """Re-hash ``bundle`` and compare with its ``manifest.sha256`` (reads only).

    ``known`` (finalize's self-check right after sealing) lists files whose digest was
    computed while they were written; one still of the same size, mtime and inode is
    compared by that digest instead of being read again. Without ``known`` (``capa
    catalog verify``, re-finalizing a sealed bundle) every file is read.

    The list is parsed as GNU ``sha256sum -c`` parses it (:mod:`capa.bundle.gnusum`);
    every line must be well formed and match, every listed name must be a regular file
    inside the bundle reached without a symbolic link, and every regular file of the
    bundle must be listed. Anything else is ``mismatch`` (or ``partial`` for unlisted
    extra content).
    """
    data = _listing(bundle)
    if isinstance(data, VerifyResult):
        return data
    entries, bad = parse_checksums(data)
    files, others = bundle_files(bundle)
    identity: dict[str, tuple[int, int]] = {}
    for rel in files:
        st = os.lstat(bundle / rel)
        identity[rel] = (st.st_dev, st.st_ino)
    check = _Check()
    if not entries:
        check.refused.append(f"{CHECKSUMS_FILE}: no properly formatted checksum lines")
    bundle_real = os.path.realpath(bundle)
    for name, expected in entries:
        check.entry(bundle, bundle_real, name, expected, _known_digest(bundle, name, known))
    extra = sorted({rel for rel in files if identity[rel] not in check.listed} | set(others))
    if check.changed or check.missing or bad or check.refused:
        status = IntegrityStatus.MISMATCH
    elif extra:
        status = IntegrityStatus.PARTIAL
    else:
        status = IntegrityStatus.OK
    return VerifyResult(
        status, check.changed, check.missing, extra, bad, check.checked, check.refused
    )


def _listing(bundle: Path) -> bytes | VerifyResult:
    """The bytes of ``manifest.sha256``, or the verdict when there is no usable list."""
    try:
        data = _read_listing(bundle / CHECKSUMS_FILE)
    except FileNotFoundError:
        if os.path.islink(bundle / CHECKSUMS_FILE):  # a dangling link is not "unsealed"
            return VerifyResult(IntegrityStatus.MISMATCH, refused=[CHECKSUMS_FILE])
        return VerifyResult(IntegrityStatus.UNKNOWN)
    if isinstance(data, str):
        return VerifyResult(IntegrityStatus.MISMATCH, refused=[data])
    return data


@dataclass
class _Check:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    listed: set[tuple[int, int]] = field(default_factory=set)
    checked: int = 0

    def entry(
        self, bundle: Path, bundle_real: str, name: str, expected: str, known: str | None
    ) -> None:
        why = _unsafe(bundle_real, bundle, name)
        found: tuple[str, tuple[int, int]] | str
        if not why and known is not None:
            st = os.lstat(bundle / name)
            found = known, (st.st_dev, st.st_ino)
        else:
            found = why or _hash_listed(bundle, name)
        if found == "":
            self.missing.append(name)
        elif isinstance(found, str):
            self.refused.append(f"{name} ({found})")
        else:
            actual, ident = found
            self.listed.add(ident)
            if actual != expected:
                self.changed.append(name)
            else:
                self.checked += 1
