"""Stop latency: SIGINT to process exit with a sealed bundle, after runs of several lengths.

    uv run python bench/stop_latency.py [--seconds 5,60,600] [--count 5,5,2] [--quick]
        [--python before=/path/bin/python --python after=.venv/bin/python]

Each run starts `capa run` (free run until stopped) of a hardware-clocked
`capa.sim.signals` device (--channels x --rate, default 8 x 10 kS/s: a moderate DAQ load),
waits the given seconds after process start, sends one SIGINT and times until the process
has exited (reaped with wait4). The latency is the whole cost of stopping a run of that
length: draining the queue, closing (or, before incremental sealing, building) the
Parquet files, sha256 and the seal. Each run must say `bundle_status: sealed`; samples
are counted from the bundle's Parquet footers (long or wide layout).

Issue 15's Done-when: medians after 5, 60 and 600 s all <= 0.5 s and within 20 % of each
other; both checks are printed (not asserted). With several --python interpreters the
runs of each length are interleaved A B A B ....
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

TARGET_S = 0.5
SPREAD = 0.20


def wait_running(folder: Path, proc: Any, timeout_s: float = 180.0) -> float | None:
    """perf_counter time at which the run's log first shows `conductor.running`."""
    deadline = time.perf_counter() + timeout_s
    log: Path | None = None
    while time.perf_counter() < deadline and proc.poll() is None:
        if log is None:
            log = next(iter(folder.rglob("run.log")), None)
        if log is not None and '"conductor.running"' in log.read_text(errors="replace"):
            return time.perf_counter()
        time.sleep(0.05)
    return None


def one_stop(python: str, work: Path, channels: int, rate: float, seconds: float) -> dict[str, Any]:
    """Run, interrupt, time the exit; returns the figures of one stop."""
    folder = Path(tempfile.mkdtemp(dir=work))
    exp = c.write_experiment(folder, c.block_rig(channels, rate, max(100, int(rate / 10))), None)
    argv = [python, "-m", "capa", "run", str(exp)]
    proc, t0, _ = c.start_child(argv, folder, c.capa_env(folder / "home"))
    # Count the seconds of *recording*: from the conductor's `conductor.running` line in
    # run.log, not from spawn (start-up under load can take several seconds by itself).
    t_running = wait_running(folder, proc)
    if t_running is None:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
        return {
            "seconds": seconds,
            "latency_s": float("nan"),
            "exit_code": proc.returncode,
            "bundle_status": None,
            "max_rss_MB": 0.0,
            "error": "never reached running",
        }
    time.sleep(max(0.0, seconds - (time.perf_counter() - t_running)))
    load = c.loadavg()
    t_sig = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    latency = time.perf_counter() - t_sig
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    summ = c.summary(out)
    fig: dict[str, Any] = {
        "seconds": seconds,
        "latency_s": round(latency, 3),
        "spawn_to_running_s": round(t_running - t0, 3),
        "exit_code": proc.returncode,
        "run_status": summ.get("run_status"),
        "bundle_status": summ.get("bundle_status"),
        "integrity_status": summ.get("integrity_status"),
        "max_rss_MB": c.maxrss_mb(usage),
        "loadavg_at_sigint": load,
    }
    bundle = c.run_bundle(out)
    if bundle is not None and (bundle / "manifest.json").exists():
        counted = c.parquet_samples(bundle)
        fig.update(
            samples=counted["samples"],
            layout=counted["layout"],
            parquet_MB=round(counted["parquet_bytes"] / 1e6, 1),
        )
    else:
        fig["error"] = err[-800:]
    shutil.rmtree(folder, ignore_errors=True)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="5,60,600", help="run lengths before SIGINT")
    parser.add_argument("--count", default="5,5,2", help="runs per length (one or per length)")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10_000, help="per channel, S/s")
    parser.add_argument("--python", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--name", default="stop_latency", help="result file name")
    parser.add_argument("--quick", action="store_true", help="3 runs of 5 s")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.count = "5", "3"
    lengths = [float(s) for s in args.seconds.split(",")]
    counts = [int(n) for n in args.count.split(",")]
    if len(counts) == 1:
        counts *= len(lengths)
    if len(counts) != len(lengths):
        raise SystemExit("--count wants one number or one per --seconds length")
    pythons = c.interpreters(args.python)

    work = Path(tempfile.mkdtemp(prefix="capa-bench-stop-"))
    stops: dict[str, list[dict[str, Any]]] = {name: [] for name in pythons}
    try:
        for seconds, count in zip(lengths, counts, strict=True):
            for i in range(count):
                for name, python in pythons.items():
                    fig = one_stop(python, work, args.channels, args.rate, seconds)
                    print(f"{name} {seconds:g} s, stop {i + 1}/{count}: {fig}", flush=True)
                    stops[name].append(fig)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, Any] = {}
    print(f"SIGINT -> sealed exit, {args.channels} ch x {args.rate:,.0f} S/s:")
    for name, runs in stops.items():
        per: dict[str, Any] = {}
        for seconds in lengths:
            sel = [r for r in runs if r["seconds"] == seconds]
            # only runs that sealed count toward the latency; the others are listed
            lat = [r["latency_s"] for r in sel if r.get("bundle_status") == "sealed"] or [
                float("nan")
            ]
            per[f"{seconds:g}"] = {
                "n": len(sel),
                "not_sealed": sum(r.get("bundle_status") != "sealed" for r in sel),
                "median_s": round(c.median(lat), 3),
                "min_s": round(min(lat), 3),
                "max_s": round(max(lat), 3),
                "all_sealed": all(r["bundle_status"] == "sealed" for r in sel),
                "median_samples": c.median([r.get("samples", 0) for r in sel]),
                "max_rss_MB": max(r["max_rss_MB"] for r in sel),
            }
        medians = [p["median_s"] for p in per.values()]
        spread = max(medians) / min(medians) - 1 if min(medians) > 0 else float("inf")
        checks = {
            "all_medians_le_0_5_s": all(m <= TARGET_S for m in medians),
            "spread": round(spread, 3),
            "within_20_percent": spread <= SPREAD,
        }
        summary[name] = {"lengths": per, **checks}
        for length, p in per.items():
            print(
                f"  {name:<8} after {length:>4} s: median {p['median_s']:.3f} s "
                f"(min {p['min_s']:.3f}, max {p['max_s']:.3f}, n={p['n']}, "
                f"{p['median_samples']:,.0f} samples, sealed: {p['all_sealed']})"
            )
        print(
            f"  {name:<8} all medians <= {TARGET_S} s: {checks['all_medians_le_0_5_s']}; "
            f"largest / smallest median = {1 + spread:.2f} -> within 20 % of each other: "
            f"{checks['within_20_percent']}"
        )
    c.write_result(
        args.name,
        {
            "lengths_s": lengths,
            "counts": counts,
            "channels": args.channels,
            "rate_per_channel": args.rate,
            "pythons": pythons,
            "stops": stops,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()
