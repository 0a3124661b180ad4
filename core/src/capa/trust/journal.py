"""``plugins.lock.journal``: an append-only history of trust decisions."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["append_journal", "journal_path"]


def journal_path(lock_path: Path) -> Path:
    """The journal beside ``lock_path`` (``plugins.lock.journal``)."""
    return lock_path.with_name(lock_path.name + ".journal")


def append_journal(
    lock_path: Path, verb: str, plugin: str, *, version: str, digest: str, reason: str
) -> Path:
    """Append ``time verb id version digest reason`` (tab-separated) and fsync it.

    Tabs and newlines inside fields are replaced by spaces so that one decision is
    always exactly one line of six fields.
    """
    fields = [datetime.now(UTC).isoformat(timespec="seconds"), verb, plugin, version, digest]
    fields.append(reason)
    line = "\t".join(" ".join(f.split()) for f in fields) + "\n"
    path = journal_path(lock_path)
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return path
