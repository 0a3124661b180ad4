"""Typed registries of accepted components, and the records the host keeps about them."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from capa.components.kinds import ComponentKind
from capa.errors import UnknownComponentError

__all__ = ["ComponentRecord", "PluginRecord", "PluginStatus", "Registry", "Rejection"]

T = TypeVar("T")


class PluginStatus(enum.StrEnum):
    """What became of a plugin when the host loaded it."""

    LOADED = "loaded"
    FAILED = "failed"
    """Importing or registering it raised; the reason says how."""
    BLOCKED = "blocked"
    """Refused before import (production mode: not trusted by ``plugins.lock``)."""


@dataclass(frozen=True, slots=True)
class ComponentRecord(Generic[T]):
    """An accepted component and where it came from.

    Attributes:
        kind: adapter, procedure, step or sink.
        id: its stable id.
        cls: the class itself.
        plugin: entry-point name of the plugin that registered it.
        dist: the distribution that provides the plugin.
        version: that distribution's version.
    """

    kind: ComponentKind
    id: str
    cls: T
    plugin: str
    dist: str
    version: str

    @property
    def provenance(self) -> str:
        """``dist version (plugin 'name')`` for messages."""
        return f"{self.dist} {self.version} (plugin {self.plugin!r})"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A component class the host refused, and why."""

    kind: ComponentKind
    id: str | None
    qualname: str
    plugin: str
    dist: str
    version: str
    reason: str


@dataclass(slots=True)
class PluginRecord:
    """A plugin (one entry point) and what loading it produced.

    Attributes:
        name: entry-point name.
        dist: providing distribution.
        version: distribution version.
        entry_point: the entry point's value (module path).
        status: loaded, failed or blocked.
        reason: why it failed or was blocked.
        components: ids of the components accepted from it, as ``kind:id``.
        commands: names of the CLI commands it added.
    """

    name: str
    dist: str
    version: str
    entry_point: str
    status: PluginStatus = PluginStatus.LOADED
    reason: str = ""
    components: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class Registry(Generic[T]):
    """Components of one kind, by id. Lookup of an unknown id lists the known ones."""

    def __init__(self, kind: ComponentKind) -> None:
        self.kind = kind
        self._records: dict[str, ComponentRecord[T]] = {}

    def _add(self, record: ComponentRecord[T]) -> None:
        self._records[record.id] = record

    def _remove(self, component_id: str) -> ComponentRecord[T] | None:
        return self._records.pop(component_id, None)

    def __getitem__(self, component_id: str) -> T:
        return self.record(component_id).cls

    def __contains__(self, component_id: object) -> bool:
        return component_id in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def get(self, component_id: str) -> T | None:
        """The class registered under ``component_id``, or ``None``."""
        rec = self._records.get(component_id)
        return rec.cls if rec is not None else None

    def record(self, component_id: str) -> ComponentRecord[T]:
        """Provenance record of a component; raises :class:`UnknownComponentError`."""
        try:
            return self._records[component_id]
        except KeyError:
            raise UnknownComponentError(self.kind.value, component_id, self._records) from None

    def ids(self) -> list[str]:
        """Every registered id, sorted."""
        return sorted(self._records)

    def records(self) -> list[ComponentRecord[T]]:
        """Every record, sorted by id."""
        return [self._records[k] for k in sorted(self._records)]
