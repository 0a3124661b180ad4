"""Contract checks: is a registered class a usable component of its kind?

Each check returns human-readable reasons (empty = the class passes). The plugin host
rejects a class with reasons instead of raising, so one broken component never takes
the host down, and ``capa plugins list`` can say exactly what is wrong with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from capa.components.adapter import Acquisition, Adapter
from capa.components.kinds import COMPONENT_ID_PATTERN, ComponentKind
from capa.components.procedure import Procedure
from capa.components.profile import Profile
from capa.components.sink import Sink
from capa.components.step import Step, StepConfig

__all__ = ["BASE_CLASSES", "check_component", "component_id"]

BASE_CLASSES: dict[ComponentKind, type] = {
    ComponentKind.ADAPTER: Adapter,
    ComponentKind.PROCEDURE: Procedure,
    ComponentKind.STEP: Step,
    ComponentKind.SINK: Sink,
    ComponentKind.PROFILE: Profile,
}

# Methods that the runtime awaits; a plain function here would fail only mid-run.
_COROUTINES: dict[ComponentKind, tuple[str, ...]] = {
    ComponentKind.ADAPTER: (
        "open",
        "close",
        "start",
        "stop",
        "read",
        "stream",
        "command",
        "snapshot",
        "discover",
        "handshake",
    ),
    ComponentKind.PROCEDURE: ("preflight", "run"),
    ComponentKind.STEP: ("execute",),
    ComponentKind.SINK: ("open", "close"),
    ComponentKind.PROFILE: (),
}

# Methods called on the data path that must *not* be coroutines.
_PLAIN: dict[ComponentKind, tuple[str, ...]] = {
    ComponentKind.ADAPTER: (
        "poll_interval_s",
        "sampling",
        "resource_id",
        "fields",
        "written_fields",
        "resource_settings",
        "claims",
    ),
    ComponentKind.PROCEDURE: (),
    ComponentKind.STEP: ("channels", "written_channels", "safe_targets"),
    ComponentKind.SINK: ("consume",),
    ComponentKind.PROFILE: ("check", "manifest_fields"),
}


def component_id(kind: ComponentKind, obj: object) -> str | None:
    """The id a class declares for ``kind``, or ``None`` if it declares no string id."""
    value = getattr(obj, kind.id_attribute, None)
    return value if isinstance(value, str) else None


def check_component(kind: ComponentKind, obj: object) -> list[str]:
    """Reasons ``obj`` is not a valid component of ``kind`` (empty when it is)."""
    base = BASE_CLASSES[kind]
    if not inspect.isclass(obj):
        return [f"registered object {obj!r} is not a class"]
    if not issubclass(obj, base):
        return [f"{obj.__qualname__} does not subclass capa.{base.__name__}"]

    reasons: list[str] = []
    reasons.extend(_check_id(kind, obj))
    if not (obj.__dict__.get("__doc__") or "").strip():
        reasons.append("class has no docstring (it is the component's user documentation)")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        reasons.append(f"abstract methods not implemented: {missing}")
    reasons.extend(_check_config_model(kind, obj))
    reasons.extend(_check_method_kinds(kind, obj))
    reasons.extend(_KIND_CHECKS[kind](obj))
    return reasons


def _check_id(kind: ComponentKind, cls: type) -> list[str]:
    attr = kind.id_attribute
    value = cls.__dict__.get(attr, getattr(cls, attr, None))
    if value is None:
        return [f"missing class attribute {attr!r} (the stable {kind.value} id)"]
    if not isinstance(value, str):
        return [f"{attr!r} must be a string, got {type(value).__name__}"]
    if not COMPONENT_ID_PATTERN.match(value):
        return [
            f"{attr} {value!r} is not a lower-case dotted name "
            "(letters, digits, underscores; e.g. 'watlow.ezzone_pm')"
        ]
    return []


def _check_config_model(kind: ComponentKind, cls: type) -> list[str]:
    attr = kind.config_attribute
    model = getattr(cls, attr, None)
    if model is None:
        return [f"missing nested config model {attr!r} (a pydantic model)"]
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        return [f"{attr} must be a pydantic BaseModel subclass, got {model!r}"]
    if model.model_config.get("extra") != "forbid":
        return [f'{attr} must reject unknown keys: set model_config extra="forbid"']
    if kind is ComponentKind.STEP and not issubclass(model, StepConfig):
        return [f"{attr} must subclass capa.StepConfig (every step accepts 'notes')"]
    return []


def _check_method_kinds(kind: ComponentKind, cls: type) -> list[str]:
    reasons = []
    for name in _COROUTINES[kind]:
        fn = inspect.getattr_static(cls, name, None)
        fn = getattr(fn, "__func__", fn)  # unwrap classmethod / staticmethod
        if fn is not None and not inspect.iscoroutinefunction(fn):
            reasons.append(f"{name}() must be a coroutine function (async def)")
    for name in _PLAIN[kind]:
        fn = inspect.getattr_static(cls, name, None)
        fn = getattr(fn, "__func__", fn)
        if fn is not None and inspect.iscoroutinefunction(fn):
            reasons.append(f"{name}() must be a plain function, not async def")
    return reasons


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


def _check_adapter(cls: Any) -> list[str]:
    reasons = []
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, frozenset | set) or not all(isinstance(c, str) for c in caps):
        reasons.append("capabilities must be a frozenset of strings")
    acquisition = getattr(cls, "acquisition", None)
    if acquisition not in tuple(Acquisition):
        reasons.append(f"acquisition must be one of {[a.value for a in Acquisition]}")
    elif acquisition == Acquisition.POLLED and not _overrides(cls, Adapter, "read"):
        reasons.append("a polled adapter must implement read()")
    elif acquisition == Acquisition.STREAMED and not _overrides(cls, Adapter, "stream"):
        reasons.append("a streamed adapter must implement stream()")
    return reasons


def _check_procedure(cls: Any) -> list[str]:
    reasons = []
    if not isinstance(getattr(cls, "uses_method", None), bool):
        reasons.append("uses_method must be a bool")
    channels = getattr(cls, "required_channels", None)
    if not isinstance(channels, tuple) or not all(isinstance(c, str) for c in channels):
        reasons.append("required_channels must be a tuple of channel names")
    caps = getattr(cls, "required_capabilities", None)
    if not isinstance(caps, frozenset | set) or not all(isinstance(c, str) for c in caps):
        reasons.append("required_capabilities must be a frozenset of strings")
    return reasons


def _check_step(cls: Any) -> list[str]:
    if not isinstance(getattr(cls, "writes_target", None), bool):
        return ["writes_target must be a bool"]
    return []


def _check_sink(cls: Any) -> list[str]:
    return []


def _check_profile(cls: Any) -> list[str]:
    # The base class already requires check(); nothing else is kind-specific yet.
    return []


_KIND_CHECKS: dict[ComponentKind, Callable[[Any], list[str]]] = {
    ComponentKind.ADAPTER: _check_adapter,
    ComponentKind.PROCEDURE: _check_procedure,
    ComponentKind.STEP: _check_step,
    ComponentKind.SINK: _check_sink,
    ComponentKind.PROFILE: _check_profile,
}
