"""The same recording (N channels x M samples) by capa, QCoDeS and Bluesky, side by side.

    nox -s bench -- peers            # the bench session has the peers installed
    python bench/peers.py [--channels 8] [--samples 2000000] [--block 10000] [--repeat 3]

Each framework records N channels x M samples of Gaussian noise (numpy, regenerated per
block so compression is not flattered) to disk in a child process, reaped with wait4:
wall and CPU (user + system) are the whole process — interpreter start, imports, set-up,
recording, closing the files — and bytes are what it left on disk.

- capa: `capa run` of a hardware-clocked `capa.sim.signals` device (block mode, --block
  samples per channel per block) for M / rate seconds, at the highest per-channel rate
  bench/throughput.py sustained with zero drops in this run of the suite (--capa-rate
  overrides). capa is paced by its simulated sample clock, the peers are not paced at
  all: that favours the peers, on purpose.
- QCoDeS (`Measurement` + `DataSaver.add_result` into its SQLite dataset): one
  `add_result` per block, every parameter registered with `paramtype="array"` (its
  "Dataset Performance" notes: arrays are stored as binary blobs, far faster than numeric
  row-by-row inserts) and the channels registered with the time array as setpoint; data
  saving in a background thread (`meas.run(write_in_background=True)`, its "Saving data in
  the background" notes).
- Bluesky: `RunEngine` running `bluesky.plans.count([det], num=M / block)`, where `det`
  is an ophyd `Device` of N+1 `ophyd.sim.SynSignal`s (a time array and one array per
  channel, each --block samples long), so one event carries one block; every document
  goes to `suitcase.msgpack.Serializer` (msgpack with numpy arrays packed as binary).
  Bluesky's documented route for high-rate detectors is "fly" scans whose data an
  external writer (e.g. an area detector's HDF5 plugin) stores outside the document
  stream; there is no such writer without hardware, so arrays travel in the events.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

FRAMEWORKS = ("capa", "qcodes", "bluesky")


# ------------------------------------------------------------------ children (one per run)
def child_qcodes(out: Path, channels: int, samples: int, block: int) -> dict[str, Any]:
    """Record with QCoDeS; returns figures measured inside the child."""
    import numpy as np
    from qcodes.dataset import (
        Measurement,
        initialise_or_create_database_at,
        load_or_create_experiment,
    )
    from qcodes.parameters import ManualParameter

    initialise_or_create_database_at(out / "bench.db")
    exp = load_or_create_experiment("bench", sample_name="bench")
    t = ManualParameter("t", unit="s")
    chans = [ManualParameter(f"v{i}", unit="V") for i in range(channels)]
    meas = Measurement(exp=exp)
    meas.register_parameter(t, paramtype="array")
    for ch in chans:
        meas.register_parameter(ch, setpoints=(t,), paramtype="array")
    rng = np.random.default_rng(0)
    period = 1e-5
    t0 = time.perf_counter()
    with meas.run(write_in_background=True) as saver:
        for b in range(samples // block):
            times = (b * block + np.arange(block)) * period
            saver.add_result((t, times), *[(ch, rng.normal(0.0, 1.0, block)) for ch in chans])
    return {"record_s": time.perf_counter() - t0}


def child_bluesky(out: Path, channels: int, samples: int, block: int) -> dict[str, Any]:
    """Record with Bluesky + ophyd simulated signals + suitcase-msgpack."""
    import numpy as np
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Component, Device
    from ophyd.sim import SynSignal
    from suitcase.msgpack import Serializer

    rng = np.random.default_rng(0)
    state = {"block": 0}
    period = 1e-5

    def times() -> Any:
        b = state["block"]
        state["block"] += 1
        return (b * block + np.arange(block)) * period

    def noise() -> Any:
        return rng.normal(0.0, 1.0, block)

    attrs: dict[str, Any] = {"t": Component(SynSignal, func=times, kind="hinted")}
    attrs.update(
        {f"v{i}": Component(SynSignal, func=noise, kind="hinted") for i in range(channels)}
    )
    det_cls = type("BenchDAQ", (Device,), attrs)
    det = det_cls(name="daq")
    engine = RunEngine({})
    serializer = Serializer(out)
    engine.subscribe(serializer)
    t0 = time.perf_counter()
    engine(count([det], num=samples // block))
    serializer.close()
    return {"record_s": time.perf_counter() - t0}


def child_main(args: argparse.Namespace) -> None:
    """Entry of a child process: record, then print figures as one JSON line."""
    fn = {"qcodes": child_qcodes, "bluesky": child_bluesky}[args.child]
    figures = fn(Path(args.out), args.channels, args.samples, args.block)
    print(json.dumps(figures))


# ------------------------------------------------------------------ parent
def available(framework: str) -> str | None:
    """None if the framework imports here, else why not."""
    modules = {"qcodes": ["qcodes"], "bluesky": ["bluesky", "ophyd", "suitcase.msgpack"]}
    for mod in modules.get(framework, []):
        try:
            __import__(mod)
        except ImportError as exc:
            return f"not installed here ({exc}); run through `nox -s bench`"
    return None


def disk_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_capa(work: Path, channels: int, samples: int, block: int, rate: float) -> dict[str, Any]:
    """One capa recording of `samples` per channel at `rate` (paced by the sample clock)."""
    seconds = samples / rate
    exp = c.write_experiment(work, c.block_rig(channels, rate, block), seconds)
    child = c.run_child(c.capa_argv("run", str(exp)), work, c.capa_env(work / "home"))
    bundle = c.run_bundle(child.stdout)
    if child.returncode != 0 or bundle is None:
        raise SystemExit(f"capa run failed: {child.stderr[-800:] or child.stdout}")
    stats = c.bundle_stats(bundle)
    return {
        "wall_s": child.wall_s,
        "cpu_s": child.cpu_s,
        "bytes": disk_bytes(bundle),
        "samples_total": stats["rows"],
        "record_s": seconds,
        "dropped_rows": stats["dropped_rows"],
    }


def run_peer(framework: str, work: Path, channels: int, samples: int, block: int) -> dict[str, Any]:
    """One peer recording in a child process."""
    out = work / "data"
    out.mkdir(parents=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", framework]
    argv += ["--out", str(out), "--channels", str(channels), "--samples", str(samples)]
    argv += ["--block", str(block)]
    child = c.run_child(argv, work, c.capa_env(work / "home"))
    if child.returncode != 0:
        raise SystemExit(f"{framework} child failed: {child.stderr[-1500:]}")
    inner = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "wall_s": child.wall_s,
        "cpu_s": child.cpu_s,
        "bytes": disk_bytes(out),
        "samples_total": channels * (samples // block) * block,
        "record_s": inner["record_s"],
    }


def sustained_rate() -> float | None:
    """The highest sustained per-channel rate from this suite's throughput result."""
    path = c.RESULTS / "throughput.json"
    if not path.exists():
        return None
    best = json.loads(path.read_text()).get("highest_sustained") or {}
    return best.get("rate_per_channel")


def per_million(run: dict[str, Any]) -> dict[str, float]:
    """Wall s, CPU s and MB on disk per million samples."""
    m = run["samples_total"] / 1e6
    return {
        "wall_s_per_M": run["wall_s"] / m,
        "cpu_s_per_M": run["cpu_s"] / m,
        "MB_per_M": run["bytes"] / 1e6 / m,
        "record_s_per_M": run["record_s"] / m,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2_000_000, help="per channel (M)")
    parser.add_argument("--block", type=int, default=10_000, help="samples per channel a block")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capa-rate", type=float, default=None, help="per channel, S/s")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--quick", action="store_true", help="M = 100 000, one repeat")
    parser.add_argument("--child", choices=["qcodes", "bluesky"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.quick:
        args.samples, args.repeat = 100_000, 1
    rate = args.capa_rate or sustained_rate() or 200_000.0
    print(
        f"{args.channels} channels x {args.samples:,} samples, block {args.block:,}; "
        f"capa paced at {rate:,.0f} S/s per channel",
        flush=True,
    )

    results: dict[str, Any] = {}
    for fw in args.frameworks.split(","):
        why = available(fw)
        if why:
            print(f"{fw}: {why}")
            results[fw] = {"skipped": why}
            continue
        runs = []
        for _ in range(args.repeat):
            work = Path(tempfile.mkdtemp(prefix=f"capa-bench-{fw}-"))
            try:
                if fw == "capa":
                    run = run_capa(work, args.channels, args.samples, args.block, rate)
                else:
                    run = run_peer(fw, work, args.channels, args.samples, args.block)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            run.update(per_million(run))
            print(f"  {fw}: " + ", ".join(f"{k} {v:.4g}" for k, v in run.items()), flush=True)
            runs.append(run)
        med = {k: round(c.median([r[k] for r in runs]), 4) for k in runs[0]}
        results[fw] = {"runs": runs, "median": med}

    ratios: dict[str, dict[str, float]] = {}
    base = results.get("capa", {}).get("median")
    for fw in ("qcodes", "bluesky"):
        peer = results.get(fw, {}).get("median")
        if base and peer:
            ratios[fw] = {
                k: round(base[k] / peer[k], 3) for k in ("wall_s_per_M", "cpu_s_per_M", "MB_per_M")
            }
    print(f"{'framework':<10} {'wall s/M':>9} {'CPU s/M':>9} {'MB/M':>8} {'record s/M':>11}")
    for fw, res in results.items():
        if "median" in res:
            m = res["median"]
            print(
                f"{fw:<10} {m['wall_s_per_M']:>9.3f} {m['cpu_s_per_M']:>9.3f} "
                f"{m['MB_per_M']:>8.2f} {m['record_s_per_M']:>11.3f}"
            )
    for fw, r in ratios.items():
        print(f"capa : {fw} = {r}")
    c.write_result(
        "peers",
        {
            "channels": args.channels,
            "samples_per_channel": args.samples,
            "block": args.block,
            "capa_rate_per_channel": rate,
            "versions": versions(),
            "results": results,
            "ratios_capa_to_peer": ratios,
        },
    )


def versions() -> dict[str, str | None]:
    """Installed versions of the frameworks compared."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("capa", "qcodes", "bluesky", "ophyd", "suitcase-msgpack", "numpy", "pyarrow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


if __name__ == "__main__":
    main()
