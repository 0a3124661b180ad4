"""Collecting validation problems, and turning pydantic errors into them.

A :class:`Section` is a place in a file (a document plus the location of a table inside
it: ``("hardware",)`` for an inline hardware table), so every problem is reported with
the file, the dotted path and — where the loader placed it — the line.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from capa.config.loader import Document, Loc, format_loc
from capa.problems import Problem, Severity

__all__ = ["Collector", "Section", "allowed_keys", "did_you_mean"]

# Tags pydantic puts into error locations for tagged unions; they are not file keys.
_UNION_TAGS = frozenset({"path", "inline"})
_CALIBRATION_KINDS = frozenset({"identity", "linear", "polynomial", "lookup", "piecewise_linear"})
_TYPE_CODES = ("_type", "_parsing")
_MAX_INPUT_REPR = 60


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclass(frozen=True)
class Section:
    """A table inside a document: where its problems are located."""

    doc: Document
    prefix: Loc = ()

    def at(self, *loc: str | int) -> Section:
        """The section of a nested table."""
        return Section(self.doc, (*self.prefix, *loc))

    def problem(self, severity: Severity, code: str, loc: Sequence[str | int], msg: str) -> Problem:
        """A problem at ``loc`` relative to this section."""
        full = (*self.prefix, *loc)
        return Problem(
            severity, code, format_loc(full), msg, self.doc.source, self.doc.line_of(full)
        )


@dataclass
class Collector:
    """Accumulates every problem of a validation run."""

    problems: list[Problem] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        """Whether any error-severity problem was found."""
        return any(p.is_error for p in self.problems)

    def error(self, section: Section, code: str, loc: Sequence[str | int], msg: str) -> None:
        """Record an error."""
        self.problems.append(section.problem(Severity.ERROR, code, loc, msg))

    def warning(self, section: Section, code: str, loc: Sequence[str | int], msg: str) -> None:
        """Record a warning."""
        self.problems.append(section.problem(Severity.WARNING, code, loc, msg))

    def info(self, section: Section, code: str, loc: Sequence[str | int], msg: str) -> None:
        """Record an informational note."""
        self.problems.append(section.problem(Severity.INFO, code, loc, msg))

    def validate(
        self, model: type[BaseModel], data: Any, section: Section, *, plugin: str = ""
    ) -> Any:
        """Validate ``data`` with ``model``; record its errors and return ``None`` on failure.

        ``plugin`` names the component when ``model`` is plugin code: anything it raises
        besides a validation error is then reported as ``plugin.error``, not propagated.
        """
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.add_pydantic(exc, model, section)
        except Exception as exc:
            if not plugin:
                raise
            self.error(section, "plugin.error", (), f"{plugin}: model failed: {exc}")
        return None

    def add_pydantic(self, exc: ValidationError, model: type[BaseModel], section: Section) -> None:
        """Record one problem per pydantic error, with did-you-mean for unknown keys."""
        for err in exc.errors(include_url=False):
            raw_loc = tuple(err["loc"])
            loc = _clean_loc(raw_loc)
            kind = err["type"]
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if kind == "extra_forbidden":
                key = str(loc[-1]) if loc else ""
                allowed = allowed_keys(model, raw_loc[:-1])
                hint = did_you_mean(key, allowed)
                if not hint and allowed:
                    hint = f"; allowed keys: {', '.join(sorted(allowed))}"
                self.error(section, "schema.unknown_key", loc, f"unknown key {key!r}{hint}")
                continue
            if kind == "missing":
                code, msg = "schema.missing_key", "field required"
            elif kind.endswith(_TYPE_CODES) or kind == "model_type":
                code = "schema.wrong_type"
            elif kind in ("literal_error", "enum"):
                code = "schema.invalid_choice"
            else:
                code = "schema.invalid_value"
            if code != "schema.missing_key" and not isinstance(err.get("input"), dict | list):
                shown = repr(err.get("input"))
                if len(shown) > _MAX_INPUT_REPR:
                    shown = shown[: _MAX_INPUT_REPR - 3] + "..."
                msg = f"{msg} (got {shown})"
            self.error(section, code, loc, msg)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if i == 1 and prev in ("hardware", "method") and part in _UNION_TAGS:
            continue
        if prev == "calibration" and part in _CALIBRATION_KINDS:
            continue  # discriminated calibration: the tag is the `kind` value, not a key
        out.append(part if isinstance(part, int) else str(part))
    return tuple(out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def allowed_keys(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Keys the model reached by following ``loc`` from ``root`` accepts."""
    models = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        holders = [m for m in models if part in m.model_fields]
        if holders:
            models = [n for m in holders for n in _models_in(m.model_fields[part].annotation)]
            if not models:
                return []
            continue
        tagged = [m for m in models if _kind_default(m) == part]
        if tagged:
            models = tagged
    keys = {name for m in models for name in m.model_fields}
    return sorted(keys)


def _kind_default(model: type[BaseModel]) -> Any:
    info = model.model_fields.get("kind")
    if info is None:
        return None
    default = info.default
    if default is None or default is ...:
        args = typing.get_args(info.annotation)
        return args[0] if len(args) == 1 else None
    return default
