"""The report page: one HTML file, no external resource (opens from disk, offline).

Figures are embedded as ``data:`` PNGs (the same files are written beside the page for
papers), styles and the one small script (the events filter) are inline. Every text that
comes from the bundle is escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from capa_report.figures import Figure, TimeAxis
from capa_report.health import DeviceHealth
from capa_report.model import EventRow, Integrity, Step

__all__ = ["Page", "render"]

MAX_INFO_EVENTS = 5000
"""Info events listed in the table; warnings and errors are always listed in full."""


@dataclass(frozen=True)
class Page:
    """Everything the page shows."""

    run_id: str
    manifest: dict[str, Any]
    integrity: Integrity
    steps: Sequence[Step]
    figures: Sequence[Figure]
    figure_links: Sequence[str]  # path of each figure relative to the page
    events: Sequence[EventRow]
    health: Sequence[DeviceHealth]
    health_notes: Sequence[str]
    axis: TimeAxis | None
    generated_utc: str
    generator: str
    channel_count: int = 0


def _d(value: Any) -> dict[str, Any]:
    """A manifest block as a dict (a hand-made manifest may hold anything there)."""
    return value if isinstance(value, dict) else {}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _seconds(t_ns: int | None) -> str:
    return "—" if t_ns is None else f"{t_ns / 1e9:.3f}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{int(h)} h {int(m):02d} min {s:04.1f} s"
    if m:
        return f"{int(m)} min {s:04.1f} s"
    return f"{s:.1f} s"


def _parse_utc(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _facts(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th scope='row'>{_e(k)}</th><td>{v if isinstance(v, Markup) else _e(v)}</td></tr>"
        for k, v in rows
        if v not in (None, "", [], {})
    )
    return f"<table class='facts'>{body}</table>"


class Markup(str):
    """Text already escaped (HTML built here)."""


def _badge(text: str, good: bool) -> Markup:
    return Markup(f"<span class='badge {'good' if good else 'bad'}'>{_e(text)}</span>")


def _summary(page: Page) -> str:
    m = page.manifest
    sample = _d(m.get("sample"))
    sample_facts = ", ".join(
        f"{k} {v}"
        for k, v in sample.items()
        if k not in ("id", "extra") and v not in (None, "", {})
    )
    sample_extra = _d(sample.get("extra"))
    if sample_extra:
        sample_facts += (", " if sample_facts else "") + json.dumps(sample_extra, sort_keys=True)
    procedure = _d(m.get("procedure"))
    operator = _d(m.get("operator"))
    started, ended = _parse_utc(m.get("started_utc")), _parse_utc(m.get("ended_utc"))
    wall = _duration((ended - started).total_seconds()) if started and ended else ""
    clock = _d(m.get("clock"))
    profile = _d(m.get("profile"))
    run_status = str(m.get("run_status", ""))
    bundle_status = str(m.get("bundle_status", ""))
    integrity = _d(m.get("integrity")).get("status", "")
    custom = _d(m.get("custom"))
    rows: list[tuple[str, Any]] = [
        ("run id", page.run_id),
        ("run status", _badge(run_status, run_status == "completed")),
        ("bundle status", _badge(bundle_status, bundle_status == "sealed")),
        ("integrity at seal", _badge(str(integrity), integrity == "ok")),
        ("exit reason", m.get("exit_reason")),
        ("operator", operator.get("display_name") or operator.get("id")),
        ("sample", sample.get("id")),
        ("sample facts", sample_facts),
        (
            "procedure",
            f"{procedure.get('id', '')} {procedure.get('version', '')} "
            f"({procedure.get('dist', '')})".strip(),
        ),
        ("profile", profile.get("id")),
        ("hardware", custom.get("hardware")),
        ("notes", custom.get("notes")),
        ("tags", ", ".join(str(t) for t in m.get("tags") or [])),
        ("started (UTC)", m.get("started_utc")),
        ("ended (UTC)", m.get("ended_utc")),
        ("wall-clock duration", wall),
    ]
    if page.axis is not None:
        rows.append(
            (
                "samples span (run clock)",
                f"{_seconds(page.axis.start_ns)} s to {_seconds(page.axis.end_ns)} s "
                f"({_duration((page.axis.end_ns - page.axis.start_ns) / 1e9)})",
            )
        )
    if page.steps:
        first = page.steps[0].start_ns
        last = max((s.end_ns or s.start_ns) for s in page.steps)
        rows.append(("method duration", _duration((last - first) / 1e9)))
    if clock:
        rows.append(
            ("clock anchor", f"t_mono_ns = 0 at {clock.get('utc_at_zero')} ({clock.get('method')})")
        )
    capa_info = _d(m.get("capa"))
    rows += [
        ("bundle schema", m.get("bundle_schema_version")),
        ("capa", capa_info.get("version")),
        ("python / platform", f"{m.get('python', '')} / {m.get('platform', '')}"),
    ]
    return _facts(rows)


def _integrity(page: Page) -> str:
    i = page.integrity
    verdict = _badge(i.status, i.ok)
    detail = (
        f"{i.checked} files re-hashed, all match their manifest.sha256 entries"
        if i.ok
        else i.detail
    )
    return (
        f"<p id='integrity' data-status='{_e(i.status)}'>{verdict} {_e(detail)}</p>"
        "<p class='note'>Checked when this report was written, against the bundle's "
        "<code>manifest.sha256</code> (the same check as <code>capa catalog verify</code>).</p>"
    )


def _timeline(page: Page) -> str:
    if not page.steps:
        return "<p class='note'>No method steps in the events (this procedure runs no method).</p>"
    axis = page.axis
    lo = min([s.start_ns for s in page.steps] + ([axis.start_ns] if axis else []))
    hi = max([(s.end_ns or s.start_ns) for s in page.steps] + ([axis.end_ns] if axis else []))
    span = max(1, hi - lo)
    width, row_h = 1000, 18
    height = row_h * len(page.steps) + 24
    bars = []
    for n, s in enumerate(page.steps):
        end = s.end_ns if s.end_ns is not None else hi
        x = 150 + (s.start_ns - lo) / span * (width - 160)
        w = max(1.5, (end - s.start_ns) / span * (width - 160))
        y = 4 + n * row_h
        cls = "failed" if s.outcome == "failed" else ("open" if s.end_ns is None else "done")
        bars.append(
            f"<text x='2' y='{y + 12}' class='lbl'>{n + 1}. {_e(s.kind)} {_e(s.target)}</text>"
            f"<rect class='{cls}' x='{x:.1f}' y='{y}' width='{w:.1f}' height='{row_h - 4}'>"
            f"<title>{_e(s.label)}: {_seconds(s.start_ns)} s to {_seconds(s.end_ns)} s, "
            f"{_e(s.outcome)}</title></rect>"
        )
    svg = (
        f"<svg class='gantt' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='method timeline'>{''.join(bars)}</svg>"
    )
    rows = "".join(
        f"<tr class='outcome-{_e(s.outcome)}'><td>{n + 1}</td><td>{_e(s.kind)}</td>"
        f"<td>{_e(s.target)}</td><td>{_e(s.notes)}</td><td class='num'>{_seconds(s.start_ns)}</td>"
        f"<td class='num'>{_seconds(s.end_ns)}</td>"
        f"<td class='num'>{_seconds(s.end_ns - s.start_ns if s.end_ns is not None else None)}"
        f"</td><td>{_e(s.outcome)}{'' if s.purpose == 'method' else ' (' + _e(s.purpose) + ')'}"
        "</td></tr>"
        for n, s in enumerate(page.steps)
    )
    table = (
        "<table class='data' id='steps'><thead><tr><th>#</th><th>kind</th><th>target</th>"
        "<th>notes</th><th>start (s)</th><th>end (s)</th><th>duration (s)</th><th>outcome</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return (
        svg
        + table
        + (
            "<p class='note'>Times are seconds on the run clock (<code>t_mono_ns</code>). "
            "The dashed lines in every plot are these step starts, numbered as here.</p>"
        )
    )


def _plots(page: Page) -> str:
    if not page.figures:
        if page.channel_count:
            return (
                f"<p class='note'>{page.channel_count} channels are declared but the bundle's "
                "sample tables hold no samples (a run that ended before recording, or a "
                "bundle not yet finalized: see <code>capa finalize</code>).</p>"
            )
        return "<p class='note'>No channel was recorded.</p>"
    out = []
    for fig, link in zip(page.figures, page.figure_links, strict=True):
        data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
        captions = []
        for s in fig.channels:
            how = (
                f"min/max of {s.data.points:,} samples per pixel column"
                if s.data.decimated
                else f"{s.data.points:,} samples"
            )
            extra = f", {s.data.skipped:,} without a value" if s.data.skipped else ""
            unit = f" [{_e(s.meta.unit)}]" if s.meta.unit else ""
            captions.append(f"<li><b>{_e(s.meta.name)}</b>{unit}: {how}{extra}</li>")
        out.append(
            f"<figure class='plot' data-group='{_e(fig.group)}'>"
            f"<img src='data:image/png;base64,{data}' width='{fig.width_px}' "
            f"height='{fig.height_px}' alt='{_e(fig.group)}: "
            f"{_e(', '.join(s.meta.name for s in fig.channels))}'>"
            f"<figcaption><b>{_e(fig.group)}</b> "
            f"(<a href='{_e(link)}'>PNG</a>)<ul>{''.join(captions)}</ul></figcaption></figure>"
        )
    return "".join(out)


def _health(page: Page) -> str:
    if not page.health:
        body = "<p class='note'>No device counters in the manifest.</p>"
    else:
        rows = "".join(
            f"<tr class='{'bad' if h.problems else 'ok'}'><td>{_e(h.device)}</td>"
            f"<td class='num'>{_e(h.emitted)}</td><td class='num'>{_e(h.written)}</td>"
            f"<td class='num'>{_e(h.dropped)}</td><td class='num'>{h.comm_errors}</td>"
            f"<td class='num'>{h.warnings}</td><td class='num'>{h.errors}</td>"
            f"<td>{_e('; '.join(h.counters))}</td>"
            f"<td>{_e('; '.join(h.problems)) or 'ok'}</td></tr>"
            for h in page.health
        )
        body = (
            "<table class='data' id='health'><thead><tr><th>device</th><th>rows emitted</th>"
            "<th>rows written</th><th>dropped</th><th>comm errors</th><th>warnings</th>"
            "<th>errors</th><th>counters</th><th>problems</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in page.health_notes)
    return body + (f"<ul class='notes'>{notes}</ul>" if notes else "")


def _clock(t_utc: str) -> str:
    # The date is in the summary; the table shows the time of day (full stamp on hover).
    moment = _parse_utc(t_utc)
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else t_utc


def _events(page: Page) -> str:
    counts: dict[str, int] = {}
    kinds: dict[tuple[str, str], int] = {}
    for ev in page.events:
        counts[ev.severity] = counts.get(ev.severity, 0) + 1
        kinds[(ev.kind, ev.severity)] = kinds.get((ev.kind, ev.severity), 0) + 1
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items())) or "none"
    by_kind = "".join(
        f"<tr class='sev-{_e(sev)}'><td>{_e(kind)}</td><td>{_e(sev)}</td>"
        f"<td class='num'>{n}</td></tr>"
        for (kind, sev), n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    rows, info_shown = [], 0
    for ev in page.events:
        if ev.severity == "info":
            info_shown += 1
            if info_shown > MAX_INFO_EVENTS:
                continue
        rows.append(
            f"<tr class='sev-{_e(ev.severity)}'><td class='num'>{_seconds(ev.t_mono_ns)}</td>"
            f"<td title='{_e(ev.t_utc)}'>{_e(_clock(ev.t_utc))}</td><td>{_e(ev.severity)}</td>"
            f"<td>{_e(ev.kind)}</td><td>{_e(ev.source)}</td><td>{_e(ev.message)}</td></tr>"
        )
    omitted = max(0, info_shown - MAX_INFO_EVENTS)
    note = (
        f"<p class='note'>{omitted:,} more info events are not listed here "
        "(every warning and error is); all are in <code>events.sqlite</code>.</p>"
        if omitted
        else ""
    )
    return (
        f"<p id='event-counts'>{_e(summary)}</p>"
        "<table class='data compact' id='event-kinds'><thead><tr><th>kind</th>"
        f"<th>severity</th><th>count</th></tr></thead><tbody>{by_kind}</tbody></table>"
        "<p><label><input type='checkbox' id='only-problems'> warnings and errors only"
        "</label></p><div class='scroll'>"
        "<table class='data' id='events'><thead><tr><th>t (s)</th><th>UTC</th>"
        "<th>severity</th><th>kind</th><th>source</th><th>message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733}
header{background:#1d2733;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d3dd}main{padding:8px 24px 40px;max-width:1700px}
h2{border-bottom:1px solid #d5dce4;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse}table.facts th{text-align:left;padding:2px 16px 2px 0;
font-weight:600;color:#445}table.facts td{padding:2px 0}
table.data{width:100%;font-size:13px}table.data th,table.data td{border-bottom:1px solid #e3e8ee;
padding:3px 8px;text-align:left;vertical-align:top}table.data thead th{background:#f2f5fa;
position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 8px;border-radius:9px;font-weight:600}
.badge.good{background:#d9f2e3;color:#14632f}.badge.bad{background:#fbdcdc;color:#8c1c1c}
tr.sev-warning td{background:#fff4d6}tr.sev-error td,tr.sev-critical td{background:#fbdcdc;
font-weight:600}tr.bad td{background:#fbdcdc}tr.outcome-failed td{background:#fbdcdc}
#events.only-problems tr.sev-info{display:none}
.scroll{max-height:70vh;overflow:auto;border:1px solid #e3e8ee}table.compact{width:auto}
figure.plot{margin:18px 0}figure.plot img{max-width:100%;height:auto;border:1px solid #e3e8ee}
figcaption ul{margin:4px 0;padding-left:20px;font-size:13px}.note{color:#5a6675;font-size:13px}
svg.gantt{width:100%;max-width:1000px;height:auto;font-size:11px}svg.gantt rect.done{fill:#5b8def}
svg.gantt rect.open{fill:#f0a830}svg.gantt rect.failed{fill:#d64545}svg.gantt .lbl{fill:#333}
"""

SCRIPT = """
(function () {
  var box = document.getElementById('only-problems');
  var table = document.getElementById('events');
  if (box && table) {
    box.addEventListener('change', function () {
      table.classList.toggle('only-problems', box.checked);
    });
  }
  document.body.dataset.ready = 'yes';
})();
"""


def render(page: Page) -> str:
    """The whole page as one string."""
    m = page.manifest
    title = f"capa report — {page.run_id}"
    subtitle = " · ".join(
        str(x)
        for x in (
            _d(m.get("sample")).get("id"),
            _d(m.get("procedure")).get("id"),
            m.get("run_status"),
            m.get("started_utc"),
        )
        if x
    )
    sections = [
        ("summary", "Run", _summary(page)),
        ("integrity-section", "Integrity", _integrity(page)),
        ("timeline", "Method timeline", _timeline(page)),
        ("plots", "Channels", _plots(page)),
        ("device-health", "Device health", _health(page)),
        ("events-section", "Events", _events(page)),
    ]
    body = "".join(
        f"<section id='{sid}'><h2>{_e(h)}</h2>{html}</section>" for sid, h, html in sections
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # Nothing may be fetched: the page must open from disk on an offline lab PC.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header><main>{body}"
        f"<p class='note'>Written {_e(page.generated_utc)} by {_e(page.generator)}.</p>"
        f"</main><script>{SCRIPT}</script></body></html>\n"
    )
