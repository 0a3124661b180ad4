"""Conformance checks a plugin package runs on its own component classes."""

from __future__ import annotations

from typing import Any

from capa.components.adapter import Adapter
from capa.components.kinds import ComponentKind
from capa.components.model import ConfigModel
from capa.plugins.contract import check_component

__all__ = ["check_adapter", "check_procedure", "check_profile", "check_sink", "check_step"]


def _fail_on(reasons: list[str], cls: object) -> None:
    if reasons:
        name = getattr(cls, "__qualname__", repr(cls))
        listing = "\n".join(f"  - {r}" for r in reasons)
        raise AssertionError(f"{name} breaks the capa component contract:\n{listing}")


def check_adapter(cls: type[Adapter], params: ConfigModel | None = None) -> None:
    """Assert ``cls`` is a valid adapter; with ``params``, also check its description.

    With example ``params`` the check also calls ``resource_id()``, ``fields()`` and
    ``writable_fields()`` — all must work without I/O — and checks field names are
    unique and writable fields exist.
    """
    reasons = check_component(ComponentKind.ADAPTER, cls)
    if not reasons and params is not None:
        reasons.extend(_describe_adapter(cls, params))
    _fail_on(reasons, cls)


def _describe_adapter(cls: type[Adapter], params: ConfigModel) -> list[str]:
    reasons: list[str] = []
    if not isinstance(params, cls.Params):
        return [f"example params are a {type(params).__name__}, not {cls.__name__}.Params"]
    rid = cls.resource_id(params)
    if not isinstance(rid, str) or ":" not in rid:
        reasons.append(f"resource_id() must return '<scheme>:<address>', got {rid!r}")
    fields = list(cls.fields(params))
    names = [f.name for f in fields]
    if not fields:
        reasons.append("fields() returned no fields")
    if len(set(names)) != len(names):
        reasons.append(f"fields() returned duplicate names: {sorted(names)}")
    missing = set(cls.writable_fields(params)) - set(names)
    if missing:
        reasons.append(f"writable_fields() names unknown fields: {sorted(missing)}")
    return reasons


def check_procedure(cls: Any) -> None:
    """Assert ``cls`` is a valid procedure."""
    _fail_on(check_component(ComponentKind.PROCEDURE, cls), cls)


def check_step(cls: Any) -> None:
    """Assert ``cls`` is a valid method-step kind."""
    _fail_on(check_component(ComponentKind.STEP, cls), cls)


def check_sink(cls: Any) -> None:
    """Assert ``cls`` is a valid sink."""
    _fail_on(check_component(ComponentKind.SINK, cls), cls)


def check_profile(cls: Any) -> None:
    """Assert ``cls`` is a valid domain profile."""
    _fail_on(check_component(ComponentKind.PROFILE, cls), cls)
