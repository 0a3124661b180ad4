"""Stop latency: SIGINT to process exit with a sealed bundle.

    uv run python bench/stop_latency.py [--seconds 60] [--count 10] [--quick]

Each of --count runs starts `capa run` (free run until stopped) of a hardware-clocked
`capa.sim.signals` device (--channels x --rate, default 8 x 10 kS/s: a moderate DAQ load),
waits --seconds after process start, sends one SIGINT and times until the process has
exited (reaped with wait4). The latency therefore includes draining the queue, finalize
(Arrow IPC -> Parquet, sorted), sha256 of every file and the seal: the whole cost of
stopping a run of that length. Each run's summary must say `bundle_status: sealed`.
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


def one_stop(work: Path, channels: int, rate: float, seconds: float) -> dict[str, Any]:
    """Run, interrupt, time the exit; returns the figures of one stop."""
    folder = Path(tempfile.mkdtemp(dir=work))
    exp = c.write_experiment(folder, c.block_rig(channels, rate, max(100, int(rate / 10))), None)
    proc, t0, _ = c.start_child(c.capa_argv("run", str(exp)), folder, c.capa_env(folder / "home"))
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    t_sig = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, status, _ = os.wait4(proc.pid, 0)
    latency = time.perf_counter() - t_sig
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    summ = c.summary(out)
    fig: dict[str, Any] = {
        "latency_s": round(latency, 3),
        "exit_code": proc.returncode,
        "run_status": summ.get("run_status"),
        "bundle_status": summ.get("bundle_status"),
        "integrity_status": summ.get("integrity_status"),
    }
    bundle = c.run_bundle(out)
    if bundle is not None and (bundle / "manifest.json").exists():
        stats = c.bundle_stats(bundle)
        fig.update(rows=stats["rows"], parquet_MB=round(stats["parquet_bytes"] / 1e6, 1))
    else:
        fig["error"] = err[-500:]
    shutil.rmtree(folder, ignore_errors=True)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="run length before SIGINT")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10_000, help="per channel, S/s")
    parser.add_argument("--quick", action="store_true", help="3 runs of 5 s")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.count = 5.0, 3

    work = Path(tempfile.mkdtemp(prefix="capa-bench-stop-"))
    stops: list[dict[str, Any]] = []
    try:
        for i in range(args.count):
            fig = one_stop(work, args.channels, args.rate, args.seconds)
            print(f"stop {i + 1}/{args.count}: {fig}", flush=True)
            stops.append(fig)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lat = [s["latency_s"] for s in stops]
    figures = {
        "median_s": round(c.median(lat), 3),
        "max_s": round(max(lat), 3),
        "min_s": round(min(lat), 3),
        "all_sealed": all(s["bundle_status"] == "sealed" for s in stops),
        "exit_codes": sorted({s["exit_code"] for s in stops}),
    }
    print(
        f"SIGINT -> exit, {args.channels} ch x {args.rate:,.0f} S/s, {args.seconds} s runs, "
        f"n={args.count}: median {figures['median_s']} s, max {figures['max_s']} s, "
        f"all sealed: {figures['all_sealed']}"
    )
    c.write_result(
        "stop_latency",
        {
            "seconds": args.seconds,
            "count": args.count,
            "channels": args.channels,
            "rate_per_channel": args.rate,
            "stops": stops,
            **figures,
        },
    )


if __name__ == "__main__":
    main()
