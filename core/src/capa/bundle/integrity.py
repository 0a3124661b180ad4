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
import re
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
_LINE = re.compile(r"^(\\?)([0-9a-fA-F]{64}) [ *](.+)$")


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


def _unescape(name: str) -> str:
    out: list[str] = []
    it = iter(name)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


def format_checksums(hashes: dict[str, str]) -> bytes:
    """``sha256sum`` text for ``{relative path: hex digest}``, sorted by path."""
    lines = []
    for rel in sorted(hashes):
        prefix, name = _escape(rel)
        lines.append(f"{prefix}{hashes[rel]}  {name}\n")
    return "".join(lines).encode("utf-8")


def parse_checksums(text: str) -> tuple[dict[str, str], list[int]]:
    """Parse ``sha256sum`` output into ``{path: hex}`` and the numbers of bad lines."""
    entries: dict[str, str] = {}
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if match is None:
            bad.append(number)
            continue
        escaped, digest, name = match.groups()
        entries[_unescape(name) if escaped else name] = digest.lower()
    return entries, bad


def write_checksums(bundle: Path) -> dict[str, str]:
    """Hash every regular file of ``bundle`` and atomically write ``manifest.sha256``."""
    files, _ = bundle_files(bundle)
    hashes = {rel: hash_file(bundle / rel) for rel in files}
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
    """

    status: IntegrityStatus
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)
    checked: int = 0

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
        if self.extra:
            parts.append("not in manifest.sha256: " + ", ".join(self.extra))
        if self.malformed_lines:
            lines = ", ".join(str(n) for n in self.malformed_lines)
            parts.append(f"{CHECKSUMS_FILE} lines not in sha256sum format: {lines}")
        return "; ".join(parts)


def verify_bundle(bundle: Path) -> VerifyResult:
    """Re-hash ``bundle`` and compare with its ``manifest.sha256`` (reads only)."""
    listing = bundle / CHECKSUMS_FILE
    try:
        text = listing.read_text(encoding="utf-8")
    except FileNotFoundError:
        return VerifyResult(IntegrityStatus.UNKNOWN)
    except (OSError, UnicodeDecodeError):
        return VerifyResult(IntegrityStatus.MISMATCH, changed=[CHECKSUMS_FILE])
    expected, bad = parse_checksums(text)
    files, others = bundle_files(bundle)
    present = set(files)
    changed: list[str] = []
    missing: list[str] = []
    checked = 0
    for rel in sorted(expected):
        if rel not in present:
            missing.append(rel)
        elif hash_file(bundle / rel) != expected[rel]:
            changed.append(rel)
        else:
            checked += 1
    extra = sorted((present - expected.keys()) | set(others))
    if changed or missing or bad:
        status = IntegrityStatus.MISMATCH
    elif extra:
        status = IntegrityStatus.PARTIAL
    else:
        status = IntegrityStatus.OK
    return VerifyResult(status, changed, missing, extra, bad, checked)
