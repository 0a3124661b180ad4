"""The live status block ``capa run`` redraws in place on a terminal (never in CI logs).

Drawn with rich's ``Live`` (imported only when stderr is a terminal), it fits the terminal
width: a status line (elapsed time, state, current step, rows), the latest value of the
channels in a stable order — the hardware file's order, grouped by ``plot_group`` — with
their units, and, while a prompt waits for the operator, its text and how to answer it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["LiveStatus", "channel_order"]

MAX_VALUE_ROWS = 3
"""Lines of channel values at most; the rest are summarised as ``+N more``."""


def channel_order(plan: Any) -> list[tuple[str, str]]:
    """``(name, unit)`` of every channel: hardware-file order, grouped by ``plot_group``.

    A group appears where its first channel is declared; channels without a group keep
    their own place.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    order: list[str] = []
    for ch in plan.channels:
        group = getattr(ch.mapping, "plot_group", None) or f"\0{ch.name}"
        if group not in groups:
            groups[group] = []
            order.append(group)
        groups[group].append((ch.name, ch.unit))
    return [entry for group in order for entry in groups[group]]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e6 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.5g}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class LiveStatus:
    """Redraws the run's status on stderr; ``update`` takes the conductor's progress.

    Args:
        channels: ``(name, unit)`` in display order (see :func:`channel_order`).
        console_url: a live console serving this run (``--serve``), shown with prompts.
    """

    def __init__(self, channels: Sequence[tuple[str, str]], console_url: str | None = None):
        from rich.console import Console
        from rich.live import Live

        self._channels = list(channels)
        self._console_url = console_url
        self._console = Console(stderr=True)
        self._live = Live(
            "", console=self._console, auto_refresh=False, transient=True, redirect_stdout=False
        )
        self._live.start()

    def update(self, progress: dict[str, Any]) -> None:
        """Redraw with the latest progress (called every half second)."""
        self._live.update(self.render(progress, self._console.width), refresh=True)

    def render(self, progress: dict[str, Any], width: int) -> Any:
        """The block for ``progress`` at ``width`` columns (a rich renderable)."""
        return render_status(self._channels, progress, width, self._console_url)

    def clear(self) -> None:
        """Remove the block (before the summary is printed)."""
        self._live.stop()


def render_status(
    channels: Sequence[tuple[str, str]],
    progress: dict[str, Any],
    width: int,
    console_url: str | None = None,
) -> Any:
    """The status block for ``progress`` at ``width`` columns (a rich ``Text``)."""
    from rich.text import Text

    out = Text(no_wrap=True, overflow="ellipsis")
    state = str(progress.get("state", "")).upper()
    out.append(f"{_clock(float(progress.get('elapsed_s', 0.0)))} ", style="bold")
    out.append(f"{state:<8}", style="bold blue")
    if progress.get("step"):
        out.append(f"  step {progress['step']}", style="bold")
    out.append(f"  {int(progress.get('rows', 0)):,} rows")
    latest = progress.get("latest", {})
    cells = []
    for name, unit in channels:
        value = latest.get(name)
        text = "–" if value is None else _fmt(float(value))
        cells.append(f"{name} {text}{' ' + unit if unit else ''}")
    rows: list[list[str]] = [[]]
    for cell in cells:
        row = rows[-1]
        if row and len("  ".join([*row, cell])) > width:
            rows.append([cell])
        else:
            row.append(cell)
    if len(rows) > MAX_VALUE_ROWS:
        # Keep whole cells: drop from the last shown line until the "+N more" fits.
        rows = rows[:MAX_VALUE_ROWS]
        last = rows[-1]
        shown = sum(len(r) for r in rows)
        while last and len("  ".join([*last, f"+{len(cells) - shown} more"])) > width:
            last.pop()
            shown -= 1
        last.append(f"+{len(cells) - shown} more")
    lines = ["  ".join(row) for row in rows if row]
    for value_line in lines:
        out.append("\n" + value_line[:width])
    prompt = progress.get("prompt")
    if isinstance(prompt, dict):
        text = str(prompt.get("title", ""))
        if prompt.get("message"):
            text += f": {prompt['message']}"
        out.append("\nPROMPT ", style="bold black on yellow")
        out.append(f" {text}", style="bold")
        answer = f"answer: {prompt.get('ack', 'capa prompt ack RUN_ID')}"
        if console_url:
            answer += f"  or in the console: {console_url}"
        out.append("\n" + answer)
    return out


def live_status(plan: Any, console_url: str | None = None) -> LiveStatus | None:
    """A :class:`LiveStatus` when stderr is a terminal, else ``None`` (CI stays quiet)."""
    if not sys.stderr.isatty():
        return None
    return LiveStatus(channel_order(plan), console_url)
