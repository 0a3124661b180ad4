"""Which ``plugins.lock`` applies, and whether capa runs in production mode (seed 000)."""

from __future__ import annotations

import os
from pathlib import Path

from capa.errors import ConfigError, TrustError

__all__ = [
    "MODE_ENV",
    "is_production",
    "lock_search_paths",
    "no_lock_error",
    "resolve_lock",
]

MODE_ENV = "CAPA_PLUGIN_MODE"
"""``dev`` (default: every installed plugin loads) or ``production`` (only locked ones)."""


def is_production() -> bool:
    """True when ``CAPA_PLUGIN_MODE=production``; any other value but ``dev`` is refused."""
    mode = os.environ.get(MODE_ENV, "dev").strip().lower() or "dev"
    if mode not in ("dev", "production"):
        raise ConfigError(f"{MODE_ENV}={mode!r}: expected 'dev' or 'production'")
    return mode == "production"


def lock_search_paths() -> list[Path]:
    """Where a ``plugins.lock`` is looked for when none is named, in order."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    user = Path(xdg) if xdg else Path.home() / ".config"
    return [Path.cwd() / "plugins.lock", user / "capa" / "plugins.lock"]


def resolve_lock(flag: Path | None) -> Path | None:
    """``flag`` (must exist) > ``./plugins.lock`` > the user config dir; ``None`` if none."""
    if flag is not None:
        if not flag.is_file():
            raise ConfigError(f"--plugins-lock {flag}: no such file")
        return flag
    return next((p for p in lock_search_paths() if p.is_file()), None)


def no_lock_error() -> TrustError:
    """The error for production mode without any ``plugins.lock`` (exit 2)."""
    searched = ", ".join(str(p) for p in lock_search_paths())
    return TrustError(
        f"production mode ({MODE_ENV}=production) needs a plugins.lock; searched: {searched} "
        "(create one with `capa plugins lock` or pass --plugins-lock)"
    )
