"""Every key of a configuration model, with its type, default and description.

``capa config schema`` renders these rows so a user can see each key of an experiment,
hardware or method file — and of any plugin's ``params``/``config`` model — without
reading code. Nested models are flattened into dotted keys (``devices[].params``);
tagged unions (calibrations) list each variant under its ``kind``.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["FieldDoc", "describe_model", "type_name"]

_MAX_DEPTH = 6


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One documented key."""

    key: str
    type: str
    default: str
    description: str

    def as_dict(self) -> dict[str, str]:
        """Plain dict for JSON output."""
        return {
            "key": self.key,
            "type": self.type,
            "default": self.default,
            "description": self.description,
        }


def type_name(annotation: Any) -> str:  # noqa: PLR0911 - one return per kind of type
    """A short human name of a type annotation (``list[DeviceConfig]``, ``float | None``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if annotation is Ellipsis:
        return "..."
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: Any) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(table defaults)"
        return repr(value)
    if info.default is PydanticUndefined:
        return "(required)"
    return repr(info.default)


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models(arg)
    return found


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    return origin in (list, tuple)


def _description(model: type[BaseModel], name: str, info: Any) -> str:
    if info.description:
        return str(info.description)
    doc = (model.__doc__ or "").strip()
    # Google-style "Attributes:" entries in the class docstring document the field.
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{name}:"):
            return stripped.split(":", 1)[1].strip()
    return ""


def _tag(model: type[BaseModel]) -> Any:
    kind = model.model_fields["kind"]
    if kind.default not in (PydanticUndefined, None):
        return kind.default
    return (typing.get_args(kind.annotation) or ("?",))[0]


def describe_model(
    model: type[BaseModel],
    prefix: str = "",
    _depth: int = 0,
    *,
    collapse: frozenset[str] = frozenset(),
) -> list[FieldDoc]:
    """Rows for every key of ``model``, nested models flattened below their key.

    Keys named in ``collapse`` are listed but not expanded (an experiment's inline
    ``hardware`` table is documented by the hardware schema).
    """
    rows: list[FieldDoc] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        nested = _models(info.annotation)
        variants = [m for m in nested if "kind" in m.model_fields] if len(nested) > 1 else []
        shown = type_name(info.annotation)
        if variants and len(variants) == len(nested):
            shown = "table, kind = " + " | ".join(str(_tag(m)) for m in variants)
        rows.append(FieldDoc(key, shown, _default(info), _description(model, name, info)))
        if _depth >= _MAX_DEPTH or key in collapse:
            continue
        child = f"{key}[]" if _is_list(info.annotation) else key
        for sub in nested:
            label = child
            if sub in variants:
                label = f"{child}(kind={_tag(sub)})"
            sub_rows = describe_model(sub, label, _depth + 1)
            if sub in variants:  # the tag is already in the label
                sub_rows = [r for r in sub_rows if r.key != f"{label}.kind"]
            rows += sub_rows
    return rows
