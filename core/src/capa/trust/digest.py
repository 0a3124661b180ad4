"""What is installed, byte for byte: the record digest of a distribution.

The digest is computed **without importing** anything. It covers every file the
distribution's ``RECORD`` lists with a hash and that lives under the installation's
``site-packages`` directory, re-hashed from disk (sha256), as sorted ``path<TAB>hash``
lines. Excluded are only files that an installer legitimately adds or rewrites:
``RECORD`` itself, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``, ``uv_cache.json``,
bytecode caches (``__pycache__``: never read in production, see :mod:`capa.trust.guard`)
and files installed outside site-packages (console scripts, whose shebang names the
interpreter, and ``.data`` files). A covered file listed *without* a hash, and any
``*.pyc`` outside ``__pycache__``, are reported as problems rather than skipped. Not
covered here: dependencies, the interpreter and the standard library; ``.pth`` files and
customize modules of the environment are recorded in the lock as a whole
(:mod:`capa.trust.hooks`). A ``.pth`` file shipped by the distribution itself is reported
as editable (it runs or redirects code at interpreter start-up).

Besides the digest, :func:`inspect_distribution` finds files that make the digest an
incomplete picture: files missing from disk, files added inside the package's
directories that ``RECORD`` does not list with a hash, sourceless bytecode, editable
installs, and an entry-point module
that would be imported from somewhere other than the distribution's own files.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata as md
from pathlib import Path

__all__ = ["DIGEST_PREFIX", "Installed", "canonical_digest", "inspect_distribution"]

DIGEST_PREFIX = "sha256:"
_DOMAIN = b"capa-record-digest-v1\n"
"""Prefix hashed first, so a digest can never be confused with any other sha256."""
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}
"""Files installers write or rewrite (uv records its cache key and timestamps in
``uv_cache.json``): not part of what was built, so not part of the digest."""


@dataclass(slots=True)
class Installed:
    """What :func:`inspect_distribution` found about one installed distribution.

    Attributes:
        digest: the record digest (``sha256:<hex>``).
        files: number of files the digest covers.
        changed: covered files whose bytes no longer match their ``RECORD`` hash.
        missing: covered files that are not on disk.
        unlisted: files inside the distribution's package directories that ``RECORD``
            does not list with a hash (only ``__pycache__`` directories are excepted:
            production imports never read cached bytecode, see :mod:`capa.trust.guard`).
        hashless: files that exist and that ``RECORD`` lists *without* a hash: a
            hashless row would otherwise admit any bytes.
        bytecode: ``*.pyc`` files outside ``__pycache__`` (sourceless modules): never
            trusted, listed or not, because a package directory holding
            ``__init__.pyc`` wins over the module file a lock pins.
        hashes: ``{RECORD path: sha256 hex}`` of every covered file, as re-hashed.
        editable: why the install counts as editable, or ``""``.
        shadowed: why the entry point would not be imported from these files, or ``""``.
    """

    digest: str
    files: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    hashless: list[str] = field(default_factory=list)
    bytecode: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict, repr=False)
    editable: str = ""
    shadowed: str = ""

    def problems(self) -> list[str]:
        """Human descriptions of every way the installed files differ from ``RECORD``."""
        out = [f"file changed since install: {p}" for p in self.changed[:5]]
        out += [f"file missing: {p}" for p in self.missing[:5]]
        out += [f"bytecode outside __pycache__ (never trusted): {p}" for p in self.bytecode[:5]]
        out += [f"file listed in RECORD without a hash: {p}" for p in self.hashless[:5]]
        out += [f"file not listed in RECORD: {p}" for p in self.unlisted[:5]]
        if self.shadowed:
            out.append(self.shadowed)
        return out


def canonical_digest(entries: Iterable[tuple[str, str]]) -> str:
    """The digest of ``(path, sha256 hex)`` pairs: sha256 over sorted ``path TAB hash LF``."""
    h = hashlib.sha256(_DOMAIN)
    for path, hexdigest in sorted(entries):
        h.update(f"{path}\t{hexdigest}\n".encode())
    return DIGEST_PREFIX + h.hexdigest()


def covered(path: str) -> bool:
    """Whether a ``RECORD`` path (relative to site-packages) is part of the digest."""
    parts = path.split("/")
    if parts[0] in ("..", "") or os.path.isabs(path):
        return False  # console scripts and other files outside site-packages
    if parts[0].endswith(".data"):
        return False  # scripts/headers/data installed elsewhere
    if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALLER_FILES:
        return False
    return not (path.endswith(".pyc") or "__pycache__" in parts)


def read_record(text: str) -> list[tuple[str, str]]:
    """``(path, declared hash)`` rows of a ``RECORD`` file (hash may be ``""``)."""
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if row:
            rows.append((row[0], row[1] if len(row) > 1 else ""))
    return rows


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inspect_distribution(dist: md.Distribution, entry_point: str = "") -> Installed:
    """Re-hash ``dist``'s files from disk and look for everything the digest misses.

    Args:
        dist: an installed distribution (from the entry point that names it).
        entry_point: the entry-point value, to check where its module would come from.
    """
    record = dist.read_text("RECORD")
    if record is None:
        return Installed(DIGEST_PREFIX + "0" * 64, editable="the distribution has no RECORD")
    rows = read_record(record)
    listed = {path for path, _ in rows}
    hashed = {path for path, declared in rows if declared}
    entries: list[tuple[str, str]] = []
    found = Installed("")
    for path, declared in rows:
        if not covered(path):
            continue
        file = Path(str(dist.locate_file(path)))
        if not declared:
            # The wheel spec allows hashless rows only for RECORD itself and bytecode;
            # a hashless row for an existing file would vouch for any bytes.
            if os.path.lexists(file):
                found.hashless.append(path)
            continue
        try:
            actual = sha256_file(file)
        except OSError:
            found.missing.append(path)
            entries.append((path, "missing"))
            continue
        entries.append((path, actual))
        found.hashes[path] = actual
        if not _matches(declared, file, actual):
            found.changed.append(path)
    found.digest = canonical_digest(entries)
    found.files = len(entries)
    found.unlisted, found.bytecode = _unlisted(dist, listed, hashed)
    found.editable = _editable(dist, listed, entry_point)
    if entry_point and not found.editable:
        found.shadowed = _shadowed(dist, entry_point)
    return found


def _matches(declared: str, file: Path, sha256_hex: str) -> bool:
    algo, _, value = declared.partition("=")
    if algo == "sha256":
        digest = bytes.fromhex(sha256_hex)
    elif algo in hashlib.algorithms_guaranteed:
        digest = hashlib.new(algo, file.read_bytes()).digest()
    else:
        return False
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == value


def _top_dirs(listed: Iterable[str]) -> set[str]:
    tops = set()
    for path in listed:
        parts = path.split("/")
        if len(parts) > 1 and covered(path) and not parts[0].endswith((".dist-info", ".data")):
            tops.add(parts[0])
    return tops


def _unlisted(
    dist: md.Distribution, listed: set[str], hashed: set[str]
) -> tuple[list[str], list[str]]:
    """Files under the package directories that no hashed row covers, and stray bytecode.

    Only ``__pycache__`` directories are skipped: production imports compile the pinned
    sources and never read cached bytecode (:mod:`capa.trust.guard`), so what lies there
    cannot run. Everything else must be listed with a hash (hashless rows are reported
    separately), and ``*.pyc`` elsewhere is always an error.
    """
    extra: list[str] = []
    bytecode: list[str] = []
    for top in sorted(_top_dirs(listed)):
        root = Path(str(dist.locate_file(top)))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                rel = (Path(dirpath) / name).relative_to(root.parent).as_posix()
                if name.endswith((".pyc", ".pyo")):
                    bytecode.append(rel)
                elif rel not in hashed and rel not in listed:
                    extra.append(rel)
    return extra, bytecode


def _editable(dist: md.Distribution, listed: set[str], entry_point: str) -> str:
    text = dist.read_text("direct_url.json")
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        if isinstance(info, dict) and (info.get("dir_info") or {}).get("editable"):
            return "editable install (direct_url.json dir_info.editable)"
    pth = sorted(p for p in listed if "/" not in p and p.endswith(".pth"))
    if pth:
        return f"installs a .pth file ({', '.join(pth)}): code or paths added at start-up"
    finders = sorted(p for p in listed if "/" not in p and p.startswith("__editable__"))
    if finders:
        return f"editable finder module ({', '.join(finders)})"
    if entry_point:
        top = entry_point.split(":", 1)[0].split(".", 1)[0]
        if f"{top}/__init__.py" not in listed and f"{top}.py" not in listed:
            return f"module {top!r} is not among the distribution's installed files"
    return ""


def _shadowed(dist: md.Distribution, entry_point: str) -> str:
    """Where Python would import the entry point's top-level module from, if elsewhere."""
    top = entry_point.split(":", 1)[0].split(".", 1)[0]
    try:
        # A top-level name: finding its spec imports nothing.
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        return f"module {top!r} cannot be located: {exc}"
    origin = spec.origin if spec is not None else None
    if origin is None:
        return f"module {top!r} has no file origin (namespace or frozen)"
    expected = {
        os.path.realpath(str(dist.locate_file(f"{top}/__init__.py"))),
        os.path.realpath(str(dist.locate_file(f"{top}.py"))),
    }
    if os.path.realpath(origin) not in expected:
        return f"module {top!r} would be imported from {origin}, not from the installed files"
    return ""


def module_tops(dist: md.Distribution, entry_point: str) -> list[str]:
    """Top-level import names a plugin distribution installs (guarded in production).

    The entry point's top-level module, plus every top-level package (``name/__init__.py``)
    or module (``name.py``) its ``RECORD`` lists, except names already imported by this
    process (capa itself, shared libraries): those are not the plugin's to guard.
    """
    import sys

    top = entry_point.split(":", 1)[0].split(".", 1)[0]
    names = {top} if top else set()
    record = dist.read_text("RECORD") or ""
    for path, _ in read_record(record):
        parts = path.split("/")
        if len(parts) == 2 and parts[1] == "__init__.py" and parts[0].isidentifier():
            names.add(parts[0])
        elif len(parts) == 1 and path.endswith(".py") and path[:-3].isidentifier():
            names.add(path[:-3])
    return sorted(n for n in names if n == top or n not in sys.modules)
