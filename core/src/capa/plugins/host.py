"""The plugin host: the only code in capa that talks to pluggy.

Loading is explicit — nothing is imported until :meth:`PluginHost.load` runs — and never
fatal: a plugin that fails to import, a hook that raises, a class that breaks its
contract or an id two distributions both claim is recorded with a reason and left out,
while everything else loads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pluggy

from capa import hookspecs
from capa.components.adapter import Adapter
from capa.components.kinds import ComponentKind
from capa.components.procedure import Procedure
from capa.components.profile import Profile
from capa.components.sink import Sink
from capa.components.step import Step
from capa.plugins.contract import check_component, component_id
from capa.plugins.discovery import EntryPointInfo, iter_entry_points
from capa.plugins.registry import (
    ComponentRecord,
    PluginRecord,
    PluginStatus,
    Registry,
    Rejection,
)

if TYPE_CHECKING:
    from pathlib import Path

    import click

__all__ = ["BUILTIN_PLUGIN", "Admission", "PluginHost"]

BUILTIN_PLUGIN = "capa"
"""Plugin name under which core registers its own components."""

Admission = Callable[[EntryPointInfo], str | None]
"""Decides, before import, whether an entry point may load: ``None`` admits it, a string
blocks it with that reason (production mode uses this to enforce ``plugins.lock``)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    plugin: str
    dist: str
    version: str


class PluginHost:
    """Owns the pluggy manager and the typed component registries.

    Args:
        group: entry-point group to discover plugins in (tests use their own group to
            stay isolated from whatever is installed).
        builtin: register core's own plugin (the bundle sink, the signal simulator).
    """

    def __init__(self, *, group: str = hookspecs.PROJECT_NAME, builtin: bool = True) -> None:
        self.group = group
        self._builtin = builtin
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._origins: dict[str, _Origin] = {}
        self.plugins: dict[str, PluginRecord] = {}
        self.rejections: list[Rejection] = []
        self.adapters: Registry[type[Adapter]] = Registry(ComponentKind.ADAPTER)
        self.procedures: Registry[type[Procedure]] = Registry(ComponentKind.PROCEDURE)
        self.steps: Registry[type[Step]] = Registry(ComponentKind.STEP)
        self.sinks: Registry[type[Sink]] = Registry(ComponentKind.SINK)
        self.profiles: Registry[type[Profile]] = Registry(ComponentKind.PROFILE)
        self._loaded = False

    # ------------------------------------------------------------------ loading
    def load(self, *, entry_points: bool = True, admit: Admission | None = None) -> None:
        """Register the built-in plugin and every plugin of the entry-point group.

        Args:
            entry_points: discover installed plugins (off for isolated test hosts).
            admit: optional gate consulted *before* each plugin is imported.
        """
        if self._loaded:
            return
        self._loaded = True
        if self._builtin:
            from capa import __version__
            from capa.builtin import plugin as builtin_plugin

            self._register(builtin_plugin, _Origin(BUILTIN_PLUGIN, "capa", __version__), "")
        if entry_points:
            for info in iter_entry_points(self.group):
                self._load_entry_point(info, admit)
        self._collect_components()

    def register(
        self, plugin: object, *, name: str, dist: str = "<test>", version: str = "0"
    ) -> PluginRecord:
        """Register a plugin object directly (tests, embedding) and collect its components.

        Call after :meth:`load` (or instead of it on a host built for a test); components
        are checked and de-duplicated exactly as for discovered plugins.
        """
        self._loaded = True
        record = self._register(plugin, _Origin(name, dist, version), "")
        if record.status is PluginStatus.LOADED:
            self._collect_components(only=name)
        return record

    def _load_entry_point(self, info: EntryPointInfo, admit: Admission | None) -> None:
        origin = _Origin(info.name, info.dist_name, info.dist_version)
        if info.name in self.plugins:
            other = self.plugins[info.name]
            self._fail(
                origin,
                info.value,
                PluginStatus.FAILED,
                f"plugin name {info.name!r} is also used by {other.dist} {other.version}; "
                "entry-point names must be unique",
                key=f"{info.name}@{info.dist_name}",
            )
            return
        if admit is not None and (reason := admit(info)) is not None:
            self._fail(origin, info.value, PluginStatus.BLOCKED, reason)
            return
        try:
            module = info.load()
        except (Exception, SystemExit) as exc:  # a plugin must never take the host down
            self._fail(origin, info.value, PluginStatus.FAILED, f"import failed: {_brief(exc)}")
            return
        self._register(module, origin, info.value)

    def _register(self, plugin: object, origin: _Origin, entry_point: str) -> PluginRecord:
        record = PluginRecord(origin.plugin, origin.dist, origin.version, entry_point)
        try:
            self._pm.register(plugin, name=origin.plugin)
        except Exception as exc:  # pluggy validation: unknown hook, bad signature, ...
            return self._fail(origin, entry_point, PluginStatus.FAILED, _brief(exc))
        # A hookimpl whose name starts with capa_ but matches no spec is a typo that
        # would silently register nothing; refuse the plugin instead.
        unknown = [
            name
            for name in dir(plugin)
            if name.startswith("capa_")
            and self._pm.parse_hookimpl_opts(plugin, name) is not None
            and not hasattr(hookspecs, name)
        ]
        if unknown:
            self._pm.unregister(plugin)
            return self._fail(
                origin, entry_point, PluginStatus.FAILED, f"unknown hook(s): {', '.join(unknown)}"
            )
        self._origins[origin.plugin] = origin
        self.plugins[origin.plugin] = record
        return record

    def _fail(
        self,
        origin: _Origin,
        entry_point: str,
        status: PluginStatus,
        reason: str,
        key: str | None = None,
    ) -> PluginRecord:
        record = PluginRecord(
            origin.plugin, origin.dist, origin.version, entry_point, status, reason
        )
        self.plugins[key or origin.plugin] = record
        return record

    # ------------------------------------------------------------------ components
    def _collect_components(self, only: str | None = None) -> None:
        for kind in ComponentKind:
            registry = self.registry(kind)
            hook = getattr(self._pm.hook, kind.hook_name)
            # Call each implementation separately (not hook()) so every class is
            # attributed to its plugin and one raising hook spoils only its own plugin.
            for impl in hook.get_hookimpls():
                if only is not None and impl.plugin_name != only:
                    continue
                origin = self._origins[impl.plugin_name]
                try:
                    returned = impl.function()
                    classes = list(returned or ())
                except Exception as exc:
                    self._plugin_error(origin, f"{kind.hook_name}() raised {_brief(exc)}")
                    continue
                for cls in classes:
                    self._accept(kind, registry, cls, origin)

    def _accept(
        self, kind: ComponentKind, registry: Registry[Any], cls: object, origin: _Origin
    ) -> None:
        cid = component_id(kind, cls)
        qualname = getattr(cls, "__qualname__", repr(cls))
        reasons = check_component(kind, cls)
        if reasons:
            self._reject(kind, cid, qualname, origin, "; ".join(reasons))
            return
        assert cid is not None  # check_component guarantees a valid id
        if cid in registry:
            first = registry.record(cid)
            if first.cls is cls:
                return  # the same class returned twice by one plugin: harmless
            # Neither wins: which code drives an instrument must not depend on the order
            # in which distributions happen to be found on sys.path.
            registry._remove(cid)
            self._forget(first)
            message = (
                f"duplicate {kind.value} id {cid!r}: provided by {first.provenance} "
                f"and by {origin.dist} {origin.version} (plugin {origin.plugin!r})"
            )
            self._reject(
                kind, cid, getattr(first.cls, "__qualname__", "?"), _origin_of(first), message
            )
            self._reject(kind, cid, qualname, origin, message)
            return
        if any(r.kind is kind and r.id == cid for r in self.rejections):
            message = f"duplicate {kind.value} id {cid!r}: already rejected as a duplicate"
            self._reject(kind, cid, qualname, origin, message)
            return
        if kind is ComponentKind.PROCEDURE and not getattr(cls, "version", ""):
            cls.version = origin.version  # type: ignore[attr-defined]
        registry._add(ComponentRecord(kind, cid, cls, origin.plugin, origin.dist, origin.version))
        self.plugins[origin.plugin].components.append(f"{kind.value}:{cid}")

    def _reject(
        self, kind: ComponentKind, cid: str | None, qualname: str, origin: _Origin, reason: str
    ) -> None:
        self.rejections.append(
            Rejection(kind, cid, qualname, origin.plugin, origin.dist, origin.version, reason)
        )

    def _forget(self, record: ComponentRecord[Any]) -> None:
        plugin = self.plugins.get(record.plugin)
        tag = f"{record.kind.value}:{record.id}"
        if plugin is not None and tag in plugin.components:
            plugin.components.remove(tag)

    def _plugin_error(self, origin: _Origin, reason: str) -> None:
        record = self.plugins[origin.plugin]
        record.status = PluginStatus.FAILED
        record.reason = f"{record.reason}; {reason}" if record.reason else reason

    # ------------------------------------------------------------------ queries
    def registry(self, kind: ComponentKind) -> Registry[Any]:
        """The registry holding components of ``kind``."""
        return cast(
            "Registry[Any]",
            {
                ComponentKind.ADAPTER: self.adapters,
                ComponentKind.PROCEDURE: self.procedures,
                ComponentKind.STEP: self.steps,
                ComponentKind.SINK: self.sinks,
                ComponentKind.PROFILE: self.profiles,
            }[kind],
        )

    def components(self) -> Iterable[ComponentRecord[Any]]:
        """Every accepted component of every kind."""
        for kind in ComponentKind:
            yield from self.registry(kind).records()

    def rejections_for(self, plugin: str) -> list[Rejection]:
        """Rejected classes a plugin registered."""
        return [r for r in self.rejections if r.plugin == plugin]

    # ------------------------------------------------------------------ CLI
    def live_console(self, address: str, runs_root: Path, plan: Any) -> Any:
        """The live console a plugin serves for ``capa run --serve``, or ``None``.

        See :func:`capa.hookspecs.capa_live_console`.
        """
        return self._pm.hook.capa_live_console(address=address, runs_root=runs_root, plan=plan)

    def has_live_console(self) -> bool:
        """Whether a loaded plugin implements ``capa_live_console``."""
        return bool(self._pm.hook.capa_live_console.get_hookimpls())

    def register_cli(self, group: click.Group, reserved: Collection[str] = ()) -> None:
        """Let every loaded plugin add its subcommands to ``group``.

        A plugin that raises, or that adds a command whose name is already taken (by
        another plugin, or by a name in ``reserved`` — the root group's lazily loaded
        built-in commands), has its additions removed and the reason recorded on its
        :class:`PluginRecord`.
        """
        for impl in self._pm.hook.capa_register_cli.get_hookimpls():
            origin = self._origins[impl.plugin_name]
            before = dict(group.commands)
            try:
                impl.function(group=group)
            except Exception as exc:
                group.commands.clear()
                group.commands.update(before)
                self._plugin_error(origin, f"capa_register_cli() raised {_brief(exc)}")
                continue
            added = [n for n in group.commands if n not in before]
            replaced = [n for n in before if group.commands.get(n) is not before[n]]
            replaced += [n for n in added if n in reserved]
            if replaced:
                group.commands.clear()
                group.commands.update(before)
                self._plugin_error(
                    origin, f"CLI command name(s) already taken: {', '.join(sorted(replaced))}"
                )
                continue
            self.plugins[origin.plugin].commands.extend(sorted(added))


def _origin_of(record: ComponentRecord[Any]) -> _Origin:
    return _Origin(record.plugin, record.dist, record.version)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
