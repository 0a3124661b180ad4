"""One PNG per plot group: every channel of the group over the run, steps marked.

Drawn with matplotlib's Agg backend (no display needed). Each channel is read in bounded
pieces and folded into a :class:`~capa_report.decimate.MinMaxBuckets` with one bucket per
pixel column of the plot, so a channel of any length costs the same memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capa_report.decimate import Decimated, MinMaxBuckets
from capa_report.model import ChannelMeta, RunData, Step

__all__ = ["Figure", "TimeAxis", "draw_group", "figure_name", "group_channels", "with_gaps"]

WIDTH_IN = 10.0
DPI = 160
AXES_HEIGHT_IN = 2.6
STEP_COLOURS = ("#f2f5fa", "#ffffff")


@dataclass(frozen=True)
class TimeAxis:
    """The run's time axis: the span drawn and the unit it is labelled in."""

    start_ns: int
    end_ns: int

    @property
    def unit(self) -> tuple[str, float]:
        """Label and divisor (ns per unit) suited to the span."""
        span_s = (self.end_ns - self.start_ns) / 1e9
        if span_s <= 600:
            return "s", 1e9
        if span_s <= 4 * 3600:
            return "min", 60e9
        return "h", 3600e9

    def scale(self, t_ns: Any) -> Any:
        """Run-clock nanoseconds to axis units."""
        return t_ns / self.unit[1]


@dataclass(frozen=True)
class ChannelSeries:
    """One channel as drawn (after decimation)."""

    meta: ChannelMeta
    data: Decimated


@dataclass(frozen=True)
class Figure:
    """One written figure and what it shows."""

    group: str
    path: Path
    channels: list[ChannelSeries]
    width_px: int
    height_px: int


def figure_name(group: str, taken: set[str]) -> str:
    """A file name for a plot group (``heat flux`` -> ``heat_flux.png``), unique in ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", group).strip("_") or "group"
    name, n = f"{stem}.png", 2
    while name in taken:
        name, n = f"{stem}-{n}.png", n + 1
    taken.add(name)
    return name


def group_channels(channels: Sequence[ChannelMeta]) -> dict[str, list[ChannelMeta]]:
    """Channels by figure, in the order their groups first appear."""
    groups: dict[str, list[ChannelMeta]] = {}
    for ch in channels:
        groups.setdefault(ch.group, []).append(ch)
    return groups


def plot_buckets(width_in: float = WIDTH_IN, dpi: int = DPI) -> int:
    """Pixel columns of the plotting area (the figure width less its margins)."""
    return max(1, round(width_in * dpi * 0.86))


def read_decimated(data: RunData, channel: ChannelMeta, axis: TimeAxis, buckets: int) -> Decimated:
    """Stream one channel through the min/max accumulator."""
    acc = MinMaxBuckets(axis.start_ns, axis.end_ns, buckets, raw_limit=2 * buckets)
    for t, v in data.chunks(channel, axis.start_ns, axis.end_ns):
        acc.add(t, v)
    return acc.result()


def with_gaps(t_ns: Any, values: Any, bucket_ns: float) -> tuple[Any, Any]:
    """Times (as float ns) and values with a NaN wherever the recording has a gap.

    A gap is a step between two drawn points longer than three pixel columns and than
    five typical steps: there the line breaks instead of bridging the missing samples
    (a dropped connection must show, not be drawn over).
    """
    import numpy as np

    t = np.asarray(t_ns, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(t) < 3:
        return t, v
    dt = np.diff(t)
    limit = max(3.0 * bucket_ns, 5.0 * float(np.median(dt)))
    breaks = np.flatnonzero(dt > limit) + 1
    if len(breaks) == 0:
        return t, v
    gap_t = (t[breaks - 1] + t[breaks]) / 2
    return np.insert(t, breaks, gap_t), np.insert(v, breaks, np.nan)


def draw_group(  # noqa: PLR0917 - one call site, every argument a different thing
    data: RunData,
    group: str,
    channels: Sequence[ChannelMeta],
    steps: Sequence[Step],
    axis: TimeAxis,
    path: Path,
) -> Figure:
    """Draw one plot group (one panel per unit, shared time axis) into ``path``."""
    # The object API, not pyplot: savefig renders with Agg whatever backend the process
    # chose (a notebook's stays as it is), no window opens, no global figure registry leaks.
    from matplotlib.figure import Figure as MplFigure

    buckets = plot_buckets()
    series = [ChannelSeries(ch, read_decimated(data, ch, axis, buckets)) for ch in channels]
    units: dict[str, list[ChannelSeries]] = {}
    for s in series:
        units.setdefault(s.meta.unit, []).append(s)

    height = AXES_HEIGHT_IN * len(units) + 0.9
    fig = MplFigure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(units), 1, sharex=True, squeeze=False)[:, 0]
    label, _ = axis.unit
    lo, hi = axis.scale(axis.start_ns), axis.scale(axis.end_ns)
    for ax, (unit, members) in zip(axes, units.items(), strict=True):
        _mark_steps(ax, steps, axis)
        for s in members:
            t, v = with_gaps(s.data.t_ns, s.data.values, (axis.end_ns - axis.start_ns) / buckets)
            name = s.meta.name + (" (no samples)" if s.data.points == 0 else "")
            ax.plot(axis.scale(t), v, linewidth=0.9, label=name)
        ax.set_ylabel(unit or "(no unit)")
        ax.grid(True, linewidth=0.3, alpha=0.6)
        # Many channels in one panel (a thermocouple rake): columns keep the legend short.
        ax.legend(
            loc="upper left", fontsize="small", framealpha=0.85, ncols=1 + (len(members) - 1) // 6
        )
        if hi > lo:
            ax.set_xlim(lo, hi)
    axes[-1].set_xlabel(f"time since run start ({label})")
    _label_steps(axes[0], steps, axis)
    fig.suptitle(f"{data.run_id} — {group}", fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    width_px, height_px = (round(v) for v in fig.get_size_inches() * DPI)
    return Figure(group, path, series, width_px, height_px)


def _mark_steps(ax: Any, steps: Sequence[Step], axis: TimeAxis) -> None:
    for n, step in enumerate(steps):
        start = axis.scale(step.start_ns)
        end = axis.scale(step.end_ns if step.end_ns is not None else axis.end_ns)
        ax.axvspan(start, end, color=STEP_COLOURS[n % 2], zorder=0, linewidth=0)
        colour = "#c0392b" if step.outcome == "failed" else "#7f8c8d"
        ax.axvline(start, color=colour, linewidth=0.7, linestyle="--", zorder=1)


def _label_steps(ax: Any, steps: Sequence[Step], axis: TimeAxis) -> None:
    # Step numbers above the top panel at each boundary (1-based, as the timeline lists
    # them). Boundaries closer than a label's width are staggered on up to three rows.
    transform = ax.get_xaxis_transform()
    span = max(1, axis.end_ns - axis.start_ns)
    last_at_row: list[float] = [-1.0, -1.0, -1.0]
    for step in steps:
        where = (step.start_ns - axis.start_ns) / span
        row = next((r for r, x in enumerate(last_at_row) if where - x > 0.015), None)
        if row is None:
            row = 2  # crowded: overlap on the top row rather than lose the label
        last_at_row[row] = where
        ax.text(
            axis.scale(step.start_ns),
            1.01 + 0.07 * row,
            str(step.index + 1),
            transform=transform,
            fontsize="x-small",
            color="#555555",
            ha="center",
            va="bottom",
            clip_on=False,
        )
