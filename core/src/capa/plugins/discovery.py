"""Listing entry points without importing anything they name."""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field

__all__ = ["EntryPointInfo", "iter_entry_points"]


@dataclass(frozen=True, slots=True)
class EntryPointInfo:
    """An entry point and the distribution that declares it, read from metadata only.

    Attributes:
        name: entry-point name — the plugin's name (``watlow``).
        value: what it points at (``capa_watlow.plugin``).
        group: entry-point group.
        dist_name: providing distribution's name as its metadata spells it.
        dist_version: providing distribution's version.
        dist: the providing distribution object (its files and ``RECORD``), when known;
            the trust gate re-hashes those files before anything is imported.
    """

    name: str
    value: str
    group: str
    dist_name: str
    dist_version: str
    dist: md.Distribution | None = field(default=None, compare=False, repr=False)

    def load(self) -> object:
        """Import the object the entry point names (the plugin module)."""
        return md.EntryPoint(name=self.name, value=self.value, group=self.group).load()


def iter_entry_points(group: str) -> list[EntryPointInfo]:
    """Entry points of ``group``, sorted by name, each once.

    A distribution visible twice on ``sys.path`` (common with editable installs) yields
    its entry points twice; those exact duplicates are folded. Two *different*
    distributions using one entry-point name are both kept so the host can report the
    clash.
    """
    seen: set[tuple[str, str, str]] = set()
    found: list[EntryPointInfo] = []
    for ep in md.entry_points(group=group):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
        dist_version = dist.version if dist is not None else "0"
        key = (ep.name, ep.value, dist_name)
        if key in seen:
            continue
        seen.add(key)
        found.append(EntryPointInfo(ep.name, ep.value, group, dist_name, dist_version, dist))
    found.sort(key=lambda e: (e.name, e.dist_name))
    return found
