"""The operator console under load: does the page keep up, and does the run lose anything?

    uv run python bench/gui_console.py [--duration 30] [--quick]

A simulated rig with 20 channels polled at 10 Hz (four plot groups) and a two-channel
DAQ at 10 kS/s per channel (blocks of 1000) runs `capa.builtin.free_run` for `--duration`
seconds from the console (capa-gui), watched by one page in headless Chromium (Debian's
`chromium`, driven by Playwright). Each second the page reports its counters; the figures:
- frames/s the page received (the server pushes 15 a second), plot redraws/s and the
  mean time one redraw of every plot takes, animation frames/s (the page's own frame rate);
- JS heap after a forced garbage collection (performance.memory, precise) each second, to
  show memory does not grow with run length (ring buffers are fixed);
- display items / frames the console dropped, and the bundle's dropped rows (must be 0)
  with rows per channel against the samples each device produced.
Asserts nothing; prints and writes bench/results/gui_console.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-precise-memory-info",
    "--js-flags=--expose-gc",
]


def rig() -> str:
    signals = ", ".join(
        f's{i} = {{ kind = "sine", unit = "degC", offset = {20 + i}, amplitude = 1.0, '
        f"period_s = {5 + i}, noise_sigma = 0.01 }}"
        for i in range(20)
    )
    channels = "\n".join(
        f'[[channels]]\nname = "ch{i}"\nkind = "temperature"\nunit = "degC"\n'
        f'source = {{ device = "poll", field = "s{i}" }}\nplot_group = "group{i // 5}"\n'
        for i in range(20)
    )
    return f"""name = "console-load"

[[devices]]
name = "poll"
adapter = "capa.sim.signals"
[devices.params]
resource = "poll"
mode = "polled"
rate_hz = 10
signals = {{ {signals} }}

[[devices]]
name = "daq"
adapter = "capa.sim.signals"
[devices.params]
resource = "daq"
mode = "block"
sample_rate_hz = 10000
block_size = 1000
[devices.params.signals]
a = {{ kind = "sine", unit = "V", offset = 0.0, amplitude = 1.0, period_s = 0.5 }}
b = {{ kind = "noise", unit = "V", mean = 1.0, sigma = 0.01 }}

{channels}
[[channels]]
name = "daq_a"
kind = "voltage"
unit = "V"
source = {{ device = "daq", field = "a" }}
plot_group = "daq"

[[channels]]
name = "daq_b"
kind = "voltage"
unit = "V"
source = {{ device = "daq", field = "b" }}
plot_group = "daq"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="10 s instead")
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration

    from playwright.sync_api import sync_playwright

    import capa.embed
    from capa_gui.rig import Rig
    from capa_gui.server import bind, make_server, serve_in_thread

    work = Path(tempfile.mkdtemp(prefix="capa-bench-gui-"))
    (work / "rig.toml").write_text(rig())
    experiment = work / "load.yaml"
    experiment.write_text(
        "hardware: rig.toml\nprocedure:\n  id: capa.builtin.free_run\n"
        f"  config: {{duration_s: {duration}}}\noperator: {{id: bench}}\nsample: {{id: GUI}}\n"
    )
    host = capa.embed.load_host()
    rig_ = Rig(host, work / "runs")
    if not rig_.load(experiment):
        print(json.dumps(rig_.problems, indent=2))
        return 2
    sock = bind("127.0.0.1", 0)
    served = make_server(rig_, sock)
    rig_.start_loop()
    serve_in_thread(served, sock)
    samples: list[dict[str, Any]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served.url)
            page.wait_for_function(
                "document.querySelector('#state-badge').dataset.state === 'idle'"
            )
            page.click("#start-btn")
            t0 = time.monotonic()
            while rig_.busy or time.monotonic() - t0 < 2:
                time.sleep(1.0)
                stats = page.evaluate(
                    "() => { window.gc(); "
                    "return {...window.__capa.stats, heap: performance.memory.usedJSHeapSize}; }"
                )
                stats["t"] = time.monotonic() - t0
                conductor = rig_.conductor
                stats["running"] = conductor is not None and conductor.state.value == "running"
                samples.append(stats)
                if time.monotonic() - t0 > duration + 60:
                    break
            browser.close()
    finally:
        served.stop()
        rig_.shutdown()

    result = rig_.last_result
    bundle = Path(str(result.bundle_path)) if result and result.bundle_path else None
    manifest = json.loads((bundle / "manifest.json").read_text()) if bundle else {}
    workers = manifest.get("queue_health", {}).get("runtime", {}).get("workers", {})
    rates = []
    for a, b in itertools.pairwise(samples):
        dt = b["t"] - a["t"]
        rates.append(
            {
                "frames_per_s": (b["frames"] - a["frames"]) / dt,
                "draws_per_s": (b["draws"] - a["draws"]) / dt,
                "rafs_per_s": (b["rafs"] - a["rafs"]) / dt,
            }
        )
    # seconds during which the run recorded (both ends of the interval)
    running = [
        r
        for r, a, b in zip(rates, samples, samples[1:], strict=False)
        if a["running"] and b["running"]
    ][1:]
    heap_5s = next((s["heap"] for s in samples if s["t"] >= 5), None)
    figures = {
        "duration_s": duration,
        "channels": 22,
        "samples_per_s": 20 * 10 + 2 * 10_000,
        "frames_per_s_median": statistics.median(r["frames_per_s"] for r in running),
        "draws_per_s_median": statistics.median(r["draws_per_s"] for r in running),
        "draws_per_s_min": min(r["draws_per_s"] for r in running),
        "animation_frames_per_s_median": statistics.median(r["rafs_per_s"] for r in running),
        "mean_redraw_ms": samples[-1]["drawMs"] / max(1, samples[-1]["draws"]),
        "mean_frame_handling_ms": samples[-1]["ingestMs"] / max(1, samples[-1]["frames"]),
        "js_heap_mb_median_first_third": statistics.median(
            s["heap"] / 1e6 for s in samples[: len(samples) // 3]
        ),
        "js_heap_mb_median_last_third": statistics.median(
            s["heap"] / 1e6 for s in samples[-(len(samples) // 3) :]
        ),
        "js_heap_mb_at_5s": heap_5s / 1e6 if heap_5s else None,
        "js_heap_mb_at_end": samples[-1]["heap"] / 1e6,
        "display_items_dropped": rig_.bridge.dropped,
        "display_items_offered": rig_.bridge.offered,
        "frames_dropped_for_the_page": served.console.frames_dropped,
        "page_errors": errors,
        "run": result.run_status if result else None,
        "bundle_dropped_rows": manifest.get("counts", {}).get("dropped", {}).get("rows"),
        "rows_per_channel": manifest.get("counts", {}).get("scalars", {}).get("channels"),
        "worker_samples": {k: v["samples"] for k, v in workers.items()},
    }
    print(json.dumps(figures, indent=2))
    c.write_result("gui_console", {"figures": figures, "per_second": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
