"""What the report needs from a bundle, as plain records.

The report is written from a :class:`RunData`; :mod:`capa_report.source` builds one from
``capa.open_bundle`` (the one way into a bundle). Keeping the report behind this small
interface lets the tests drive the renderer with synthetic runs of any shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["ChannelMeta", "EventRow", "Integrity", "RunData", "Step", "steps_from_events"]


@dataclass(frozen=True)
class ChannelMeta:
    """One channel: name, unit and where it is plotted."""

    name: str
    unit: str = ""
    kind: str = ""
    device: str = ""
    plot_group: str = ""
    calibration: str = ""
    rows: int | None = None  # samples recorded, when the bundle says (to size the reads)

    @property
    def group(self) -> str:
        """The figure it is drawn in: its ``plot_group``, else a figure of its own."""
        return self.plot_group or self.name


@dataclass(frozen=True)
class EventRow:
    """One row of ``events.sqlite`` (seed 003)."""

    t_mono_ns: int
    t_utc: str
    kind: str
    severity: str
    source: str
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Integrity:
    """The bundle's integrity check: ``ok``, ``mismatch``, ``partial`` or ``unknown``."""

    status: str
    detail: str
    checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether the bundle is exactly what was sealed."""
        return self.status == "ok"


@dataclass(frozen=True)
class Step:
    """One method step as the executor recorded it (``method.step.*`` events)."""

    index: int
    kind: str
    label: str
    start_ns: int
    end_ns: int | None  # None: entered, never exited (the run ended inside it)
    outcome: str  # completed, stopped, safe_shutdown, failed, unfinished
    target: str = ""
    notes: str = ""
    purpose: str = "method"


class RunData(Protocol):
    """A bundle as the report reads it."""

    @property
    def run_id(self) -> str:
        """The run id."""

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` as a dict."""

    def channels(self) -> Sequence[ChannelMeta]:
        """Every recorded channel."""

    def span(self) -> tuple[int, int] | None:
        """First and last sample time over every channel (None: no samples)."""

    def chunks(
        self, channel: ChannelMeta, start_ns: int, end_ns: int
    ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """The channel's samples in ``[start_ns, end_ns]`` in bounded pieces."""

    def events(self) -> Sequence[EventRow]:
        """Every event, in time order."""

    def verify(self) -> Integrity:
        """Re-hash the bundle against its seal."""


def _metadata(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            loaded = json.loads(value)
        except ValueError:
            return {"raw": value}
        return loaded if isinstance(loaded, dict) else {"value": loaded}
    return {}


def event_row(raw: dict[str, Any]) -> EventRow:
    """An :class:`EventRow` from a dict with the columns of the events table."""
    return EventRow(
        t_mono_ns=int(raw.get("t_mono_ns") or 0),
        t_utc=str(raw.get("t_utc") or ""),
        kind=str(raw.get("kind") or ""),
        severity=str(raw.get("severity") or "info"),
        source=str(raw.get("source") or ""),
        message=str(raw.get("message") or ""),
        metadata=_metadata(raw.get("metadata", raw.get("metadata_json"))),
    )


def steps_from_events(events: Sequence[EventRow]) -> list[Step]:
    """The method timeline: pair each ``method.step.entered`` with its exit or failure.

    The executor writes ``entered`` then ``exited`` (outcome in the metadata) or ``failed``
    for every step, each carrying the step's index and kind; a step run again (the
    ``safe_shutdown`` step after an abort) is a second entry.
    """
    steps: list[Step] = []
    open_steps: dict[int, tuple[EventRow, int]] = {}
    for ev in events:
        if ev.kind == "method.step.entered":
            index = int(ev.metadata.get("index", len(steps)))
            open_steps[index] = (ev, len(steps))
            steps.append(_step(ev, index, None, "unfinished"))
        elif ev.kind in ("method.step.exited", "method.step.failed"):
            index = int(ev.metadata.get("index", -1))
            if index not in open_steps:
                continue  # an exit without its entry (a truncated log): nothing to pair
            entered, position = open_steps.pop(index)
            outcome = (
                "failed"
                if ev.kind == "method.step.failed"
                else str(ev.metadata.get("outcome") or "completed")
            )
            steps[position] = _step(entered, index, ev.t_mono_ns, outcome)
    return steps


def _step(entered: EventRow, index: int, end_ns: int | None, outcome: str) -> Step:
    meta = entered.metadata
    return Step(
        index=index,
        kind=str(meta.get("kind") or ""),
        label=entered.message,
        start_ns=entered.t_mono_ns,
        end_ns=end_ns,
        outcome=outcome,
        target=str(meta.get("target") or ""),
        notes=str(meta.get("notes") or ""),
        purpose=str(meta.get("purpose") or "method"),
    )
