"""Validation layers of a method: step kinds and fields (schema), then step targets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from capa.components.step import Step, StepConfig
from capa.config.method import MethodConfig
from capa.config.problems import Collector, Section, did_you_mean
from capa.config.providers import provider_hint

if TYPE_CHECKING:
    from capa.config.check_hardware import ResolvedHardware
    from capa.plugins.host import PluginHost

__all__ = ["ResolvedMethod", "ResolvedStep", "check_method", "check_step_targets"]


@dataclass
class ResolvedStep:
    """A step whose kind and fields validated."""

    index: int
    kind: str
    config: StepConfig
    step: Step


@dataclass
class ResolvedMethod:
    """A method after the schema layer."""

    config: MethodConfig
    section: Section
    steps: list[ResolvedStep] = field(default_factory=list)


def check_method(
    data: Any, section: Section, host: PluginHost, col: Collector
) -> ResolvedMethod | None:
    """Schema layer of a method; ``None`` when it found errors."""
    start = len(col.problems)
    config = col.validate(MethodConfig, data, section)
    if config is None:
        return None
    resolved = ResolvedMethod(config, section)
    for i, raw in enumerate(config.steps):
        step = _check_step(i, raw, section, host, col)
        if step is not None:
            resolved.steps.append(step)
    if any(p.is_error for p in col.problems[start:]):
        return None
    return resolved


def _check_step(
    i: int, raw: Mapping[str, Any], section: Section, host: PluginHost, col: Collector
) -> ResolvedStep | None:
    loc = ("steps", i)
    kind = raw.get("kind")
    if kind is None:
        col.error(section, "schema.missing_key", (*loc, "kind"), "field required")
        return None
    if not isinstance(kind, str):
        col.error(
            section, "schema.wrong_type", (*loc, "kind"), f"kind must be a string (got {kind!r})"
        )
        return None
    cls = host.steps.get(kind)
    if cls is None:
        available = host.steps.ids()
        col.error(
            section,
            "plugin.step_unknown",
            (*loc, "kind"),
            f"unknown step kind {kind!r}{did_you_mean(kind, available)}"
            f"{provider_hint('step', kind)}; "
            f"available: {', '.join(available) or 'none installed'}",
        )
        return None
    fields = {k: v for k, v in raw.items() if k != "kind"}
    config = col.validate(cls.Config, fields, section.at(*loc), plugin=f"step kind {kind!r}")
    if config is None:
        return None
    try:
        step = cls(config, i)
    except Exception as exc:  # plugin code
        col.error(section, "plugin.error", loc, f"step kind {kind!r} failed: {exc}")
        return None
    return ResolvedStep(i, kind, config, step)


def check_step_targets(method: ResolvedMethod, hw: ResolvedHardware, col: Collector) -> None:
    """Reference layer: every channel a step uses is declared, and writable if written."""
    declared = sorted([*hw.channels, *hw.derived])
    for rs in method.steps:
        loc = ("steps", rs.index)
        try:
            used = tuple(rs.step.channels())
            written = set(rs.step.written_channels())
        except Exception as exc:  # plugin code
            col.error(method.section, "plugin.error", loc, f"step kind {rs.kind!r} failed: {exc}")
            continue
        for channel in dict.fromkeys((*used, *written)):
            key = _field_naming(rs.config, channel)
            if not hw.has_channel(channel):
                col.error(
                    method.section,
                    "step.target_unknown",
                    (*loc, *key),
                    f"step [{rs.index:02d}] {rs.kind} uses channel {channel!r}, which the "
                    f"hardware does not declare{did_you_mean(channel, declared)}",
                )
                continue
            if channel not in written:
                continue
            if channel in hw.derived:
                col.error(
                    method.section,
                    "step.target_not_writable",
                    (*loc, *key),
                    f"step [{rs.index:02d}] {rs.kind} writes channel {channel!r}, which is "
                    "derived from other channels (computed, not writable)",
                )
            elif not hw.channel_writable(channel):
                source = hw.channels[channel].source
                col.error(
                    method.section,
                    "step.target_not_writable",
                    (*loc, *key),
                    f"step [{rs.index:02d}] {rs.kind} writes channel {channel!r}, but its "
                    f"source {source.device}.{source.field} is not writable",
                )
            elif not hw.channels[channel].calibration.invertible:
                col.error(
                    method.section,
                    "step.target_not_invertible",
                    (*loc, *key),
                    f"step [{rs.index:02d}] {rs.kind} writes channel {channel!r}, whose "
                    f"{hw.channels[channel].calibration.kind} calibration has no exact inverse",
                )


def _field_naming(config: StepConfig, channel: str) -> tuple[str | int, ...]:
    """Where in the step ``channel`` is written (``target``, ``end_condition.channel``)."""
    found = _find(config.model_dump(), channel)
    return found if found is not None else ()


def _find(value: Any, channel: str) -> tuple[str | int, ...] | None:
    if value == channel:
        return ()
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    for key, item in items:
        inner = _find(item, channel)
        if inner is not None:
            return (key, *inner)
    return None
