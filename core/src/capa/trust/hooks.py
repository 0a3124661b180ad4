"""Start-up hooks: code the interpreter runs before capa does, recorded in the lock.

Python's :mod:`site` executes every ``import`` line of each ``*.pth`` file in the
site-packages directories, then imports ``sitecustomize`` and ``usercustomize`` if they
exist. That code runs before capa starts, so production mode cannot *prevent* it: it can
only refuse to call a run trusted when the hooks differ from those an administrator
locked. ``plugins.lock`` therefore records each hook's name and sha256; any hook added,
changed or removed since is drift (``startup_hook``) that blocks every plugin.

Honest limit: a hook that already ran could have altered capa itself in memory; the
check catches hooks dropped by someone who can write site-packages but did not also
anticipate this check. Write access to site-packages must stay with the administrator.
"""

from __future__ import annotations

import hashlib
import importlib.util
import site
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StartupHook", "compare_hooks", "current_hooks"]


@dataclass(frozen=True, slots=True, order=True)
class StartupHook:
    """One start-up hook.

    Attributes:
        name: ``<file>.pth`` (site-packages) or ``user:<file>.pth`` (user site), or the
            module name ``sitecustomize`` / ``usercustomize``.
        sha256: hex digest of the file's bytes.
    """

    name: str
    sha256: str


def _site_dirs() -> list[tuple[str, Path]]:
    dirs = [("", Path(p)) for p in site.getsitepackages()]
    if site.ENABLE_USER_SITE and not sys.flags.no_user_site:
        dirs.append(("user:", Path(site.getusersitepackages())))
    return dirs


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def current_hooks() -> list[StartupHook]:
    """The ``.pth`` files and customize modules this interpreter runs at start-up."""
    found: dict[str, StartupHook] = {}
    for prefix, folder in _site_dirs():
        try:
            names = sorted(p for p in folder.iterdir() if p.name.endswith(".pth"))
        except OSError:
            continue  # a site directory that does not exist holds no hooks
        for path in names:
            try:
                digest = _sha256(path)
            except OSError as exc:
                digest = f"unreadable: {exc.strerror or exc}"
            found[prefix + path.name] = StartupHook(prefix + path.name, digest)
    for module in ("sitecustomize", "usercustomize"):
        try:
            spec = importlib.util.find_spec(module)  # a top-level name: imports nothing
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            found[module] = StartupHook(module, _sha256(Path(spec.origin)))
    return sorted(found.values())


def compare_hooks(locked: list[StartupHook], now: list[StartupHook]) -> list[str]:
    """One line per hook added, changed or removed since ``locked`` was recorded."""
    before = {h.name: h.sha256 for h in locked}
    after = {h.name: h.sha256 for h in now}
    out = [f"start-up hook added since locking: {n}" for n in sorted(after.keys() - before)]
    out += [
        f"start-up hook changed since locking: {n}"
        for n in sorted(after.keys() & before.keys())
        if after[n] != before[n]
    ]
    out += [f"start-up hook removed since locking: {n}" for n in sorted(before.keys() - after)]
    return out
