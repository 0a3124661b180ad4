"""Reference layer for derived channels: names, expressions, units and cycles.

Every derived channel's expression is parsed against the measured channels and the other
derived channels (so problems are reported with the file, ``derived[i].expression`` and
the line); a derived channel whose expression can be shown to produce another unit than
it declares is an error, and so is a cycle (``a`` from ``b`` from ``a``). The result is the
evaluation order the pipeline uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from capa.config.expressions import Expression, ExpressionError, parse_expression

if TYPE_CHECKING:
    from capa.config.hardware import DerivedChannelConfig, HardwareConfig
    from capa.config.problems import Collector, Section

__all__ = ["ResolvedDerived", "check_derived"]


@dataclass(frozen=True)
class ResolvedDerived:
    """A derived channel whose expression parsed and checked.

    Attributes:
        index: position in the file's ``derived`` list.
        config: the declaration.
        expression: the parsed expression (a template: the pipeline parses its own copy
            per run, so window state never leaks between runs).
    """

    index: int
    config: DerivedChannelConfig
    expression: Expression


def check_derived(
    config: HardwareConfig, section: Section, col: Collector
) -> dict[str, ResolvedDerived]:
    """Check every derived channel; return them in evaluation order (inputs first)."""
    from capa.config.units import canonical_unit

    measured = {c.name: c.value_unit for c in config.channels}
    units = {**measured, **{d.name: d.unit for d in config.derived}}
    parsed: dict[str, ResolvedDerived] = {}
    for i, d in enumerate(config.derived):
        loc = ("derived", i)
        if d.name in measured:
            col.error(
                section,
                "derived.duplicate_name",
                (*loc, "name"),
                f"derived channel {d.name!r} has the name of a measured channel",
            )
            continue
        clash = sorted(set(d.constants) & set(units))
        if clash:
            col.error(
                section,
                "derived.constant_shadows_channel",
                (*loc, "constants"),
                f"constant name(s) {', '.join(clash)} are also channel names",
            )
            continue
        others = {k: v for k, v in units.items() if k != d.name}
        try:
            expr = parse_expression(d.expression, channels=others, constants=d.constants)
        except ExpressionError as exc:
            hint = " (a channel cannot use itself)" if _names_itself(d) else ""
            col.error(
                section,
                "derived.expression",
                (*loc, "expression"),
                f"derived channel {d.name!r}: {exc}{hint}",
            )
            continue
        if expr.unit not in (None, "") and canonical_unit(expr.unit) != canonical_unit(d.unit):
            col.error(
                section,
                "derived.unit_mismatch",
                (*loc, "unit"),
                f"derived channel {d.name!r} computes a value in {expr.unit} but declares "
                f"{d.unit!r}",
            )
            continue
        if d.name not in parsed:
            parsed[d.name] = ResolvedDerived(i, d, expr)
    seen: set[str] = set()
    for i, d in enumerate(config.derived):
        if d.name in seen:
            col.error(
                section,
                "derived.duplicate_name",
                ("derived", i, "name"),
                f"derived channel name {d.name!r} is used twice",
            )
        seen.add(d.name)
    graph = {name: [x for x in r.expression.inputs if x in parsed] for name, r in parsed.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        first = parsed[exc.args[1][0]]
        col.error(
            section,
            "derived.cycle",
            ("derived", first.index, "expression"),
            f"derived channels depend on each other in a cycle: {cycle}",
        )
        return {}
    return {name: parsed[name] for name in order}


def _names_itself(d: DerivedChannelConfig) -> bool:
    import re

    return re.search(rf"\b{re.escape(d.name)}\b", d.expression) is not None
