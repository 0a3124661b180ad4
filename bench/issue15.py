"""Issue 15's Done-when figures, side by side, from the result files of this folder.

    uv run python bench/issue15.py [--before SUFFIX] [--after SUFFIX]

Reads results/<part><suffix>.json (before: `_before`; after: `_after`, falling back to
the suite's plain `<part>.json`) and prints, per Done-when item, the before and after
figures and whether the after figures meet the issue's targets. It measures nothing:
run the scripts first (see README.md, "Issue 15: before / after").
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import _common as c

KEYS = {
    "stop_latency": "summary",
    "seal_memory": "summary",
    "cpu_per_sample": "median",
    "fast_start": "results",
    "peers": "ratios_peer_to_capa",
}


def load(part: str, suffix: str) -> dict[str, Any] | None:
    """results/<part><suffix>.json (of the current format), or None."""
    for name in (f"{part}{suffix}", part if suffix == "_after" else None):
        if name and (path := c.RESULTS / f"{name}.json").exists():
            data: dict[str, Any] = json.loads(path.read_text())
            if KEYS[part] in data:  # older result files have another shape
                return data
    return None


def pick(groups: dict[str, Any], prefer: str) -> tuple[str, Any] | None:
    """The entry named `prefer` (or the only / last one) of a per-interpreter mapping."""
    if not groups:
        return None
    if prefer in groups:
        return prefer, groups[prefer]
    name = list(groups)[-1]
    return name, groups[name]


def stop(data: dict[str, Any] | None, who: str) -> str:
    if not data:
        return "no result"
    got = pick(data["summary"], who)
    if not got:
        return "no result"
    _, s = got
    per = ", ".join(f"{k} s: {v['median_s']:.3f}" for k, v in s["lengths"].items())
    return (
        f"medians {per}; all <= 0.5 s: {s['all_medians_le_0_5_s']}; "
        f"within 20 %: {s['within_20_percent']} (spread {s['spread']:.0%})"
    )


def memory(data: dict[str, Any] | None, who: str) -> str:
    if not data:
        return "no result"
    got = pick(data["summary"], who)
    if not got:
        return "no result"
    _, s = got
    per = ", ".join(
        f"{k}: {v['max_rss_MB']:,.0f} MB ({v['samples'] / 1e6:.1f} M recorded)"
        for k, v in s["sizes"].items()
    )
    return f"{per}; largest under 1 GB: {s['largest_under_1_GB']}"


def cpu(data: dict[str, Any] | None, who: str) -> tuple[str, float | None]:
    if not data:
        return "no result", None
    med = {k: v for k, v in data["median"].items() if k != "ratio" and "error" not in v}
    got = pick(med, who)
    if not got:
        return "no result", None
    _, s = got
    value = float(s["cpu_s_per_million_samples"])
    return f"{value:.4f} CPU s / M samples ({s['runs']} runs, kept up: {s['all_kept_up']})", value


def start(data: dict[str, Any] | None, who: str) -> str:
    if not data:
        return "no result"
    res = data["results"]
    parts = []
    for name, r in res.items():
        if who not in name and name not in ("current",):
            continue
        h, p = r["help"], r["pandas"]
        pandas = (
            f"pandas imported: {p['pandas_imported']}"
            if p["pandas_installed"]
            else "pandas not installed (check vacuous)"
        )
        parts.append(f"[{name}] --help {h['ratio']}x python -c pass; {pandas}")
    return "; ".join(parts) or "no result"


def peers(data: dict[str, Any] | None) -> str:
    if not data:
        return "no result"
    out = []
    for fw, r in data.get("ratios_peer_to_capa", {}).items():
        out.append(f"{fw} / capa CPU {r['cpu_s_per_M']:.2f}x")
    base = data["results"].get("capa", {}).get("median", {})
    head = f"capa {base.get('cpu_s_per_M', float('nan')):.3f} CPU s/M; " if base else ""
    return head + ", ".join(out) + f"; same samples: {data.get('same_samples')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="_before")
    parser.add_argument("--after", default="_after")
    args = parser.parse_args()
    b, a = args.before, args.after
    print("Stop latency, SIGINT -> sealed exit, 8 ch x 10 kS/s (target: <= 0.5 s, within 20 %)")
    print(f"  before: {stop(load('stop_latency', b), 'before')}")
    for extra in sorted(c.RESULTS.glob(f"stop_latency{b}_*.json")):  # further runs, kept apart
        more = json.loads(extra.read_text())
        print(f"  before, {extra.name}: {stop(more, 'before')}")
    print(f"  after:  {stop(load('stop_latency', a), 'after')}")
    for extra in sorted(c.RESULTS.glob(f"stop_latency{a}_*.json")):  # further runs, kept apart
        more = json.loads(extra.read_text())
        print(f"  after, {extra.name}: {stop(more, 'after')}")
    print("Peak RSS, record + seal (target: 120 M samples under 1 GB)")
    print(f"  before: {memory(load('seal_memory', b), 'before')}")
    print(f"  after:  {memory(load('seal_memory', a), 'after')}")
    print("CPU per million samples, 8 ch x 1 MS/s (target: after <= before / 2)")
    text_b, vb = cpu(load("cpu_per_sample", b), "before")
    text_a, va = cpu(load("cpu_per_sample", a), "after")
    print(f"  before: {text_b}")
    print(f"  after:  {text_a}")
    after_data = load("cpu_per_sample", a)
    if after_data and "before" in after_data["median"] and "after" in after_data["median"]:
        # the after file's own interleaved before runs: same session, same load
        vb = float(after_data["median"]["before"]["cpu_s_per_million_samples"])
        print(f"  before (interleaved with after): {vb:.4f} CPU s / M samples")
    if vb and va:
        print(f"  before / after = {vb / va:.2f}x (>= 2x: {vb / va >= 2})")
    print("Start-up (target: --help <= 2x python -c pass; no pandas)")
    print(f"  before: {start(load('fast_start', b), 'before')}")
    print(f"  after:  {start(load('fast_start', a), 'after')}")
    print("Fair peers (target: every peer / capa CPU > 1 on the *_fair variants)")
    print(f"  before: {peers(load('peers', b))}")
    print(f"  after:  {peers(load('peers', a))}")


if __name__ == "__main__":
    main()
