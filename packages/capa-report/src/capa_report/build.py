"""Write a run's report: ``<out>/report.html`` and ``<out>/figures/<group>.png``.

Everything is written into a fresh folder inside ``out`` first and moved into place at
the end, so a failure half-way leaves the previous report (or nothing), never a page that
points at figures that were not written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from capa_report import __version__
from capa_report.figures import Figure, TimeAxis, draw_group, figure_name, group_channels
from capa_report.health import device_health
from capa_report.html import Page, render
from capa_report.model import Integrity, RunData, Step, steps_from_events

__all__ = ["REPORT_FILE", "Written", "write_report"]

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Written:
    """What a report run wrote."""

    html: Path
    figures: list[Path]
    integrity: Integrity
    steps: list[Step]


def time_axis(span: tuple[int, int] | None, steps: list[Step]) -> TimeAxis | None:
    """The span every plot shares: the samples' span, widened to show every step."""
    bounds = [] if span is None else list(span)
    for step in steps:
        bounds.append(step.start_ns)
        if step.end_ns is not None:
            bounds.append(step.end_ns)
    if not bounds:
        return None
    return TimeAxis(min(bounds), max(bounds))


def write_report(data: RunData, out: Path) -> Written:
    """Build the report of ``data`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    events = list(data.events())
    steps = steps_from_events(events)
    integrity = data.verify()
    axis = time_axis(data.span(), steps)
    work = Path(tempfile.mkdtemp(prefix=".capa-report-", dir=out))
    try:
        figures: list[Figure] = []
        channels = list(data.channels())
        if axis is not None and channels:
            taken: set[str] = set()
            for group, members in group_channels(channels).items():
                path = work / FIGURES_DIR / figure_name(group, taken)
                figures.append(draw_group(data, group, members, steps, axis, path))
        health, notes = device_health(data.manifest, events)
        page = Page(
            run_id=data.run_id,
            manifest=data.manifest,
            integrity=integrity,
            steps=steps,
            figures=figures,
            figure_links=[f"{FIGURES_DIR}/{f.path.name}" for f in figures],
            events=events,
            health=health,
            health_notes=notes,
            axis=axis,
            generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            generator=f"capa-report {__version__}",
            channel_count=len(channels),
        )
        (work / REPORT_FILE).write_text(render(page), encoding="utf-8")
        # Into place: the figures first, then the page that shows them.
        final_figures = out / FIGURES_DIR
        if final_figures.exists():
            shutil.rmtree(final_figures)
        if (work / FIGURES_DIR).exists():
            (work / FIGURES_DIR).replace(final_figures)
        else:
            final_figures.mkdir()
        (work / REPORT_FILE).replace(out / REPORT_FILE)
    finally:
        # Only the scratch folder made above. A failure to remove it must not replace the
        # exception that may be on its way out; what is left is a hidden, empty-ish folder.
        shutil.rmtree(work, ignore_errors=True)
    return Written(
        html=out / REPORT_FILE,
        figures=[final_figures / f.path.name for f in figures],
        integrity=integrity,
        steps=steps,
    )
