"""The same recording (N channels x M samples) by capa, QCoDeS and Bluesky, side by side.

    nox -s bench -- peers            # the bench session has the peers installed
    python bench/peers.py [--channels 8] [--samples 2000000] [--block 10000] [--repeat 3]
        [--capa-rate 1e6] [--capa-python /path/bin/python]

Every contestant records the same samples: N channels x M samples per channel of
Gaussian noise, regenerated for every block (compression is not flattered, and no
contestant can repeat one array). Each records in a child process reaped with wait4: wall
and CPU (user + system) are the whole process -- interpreter start, imports, set-up,
recording, closing and (where the variant says so) fsync and checksums -- and bytes are
what it left on disk. After each run a separate verification child (not timed) reads the
output back: value count per channel, and that consecutive blocks differ.

Contestants (one repetition runs them all, interleaved; capa goes first and the peers
record exactly the per-channel sample count capa recorded, cut to whole blocks):

- capa: `capa run` of a hardware-clocked `capa.sim.signals` device (block mode, --block
  samples per channel per block) for M / rate seconds at --capa-rate per channel. capa is
  paced by its simulated sample clock, the peers are not paced at all: that favours the
  peers. Its durability is capa's own: data fsynced while recording, zstd Parquet, a
  sha256 of every file in manifest.sha256. Samples counted from the Parquet footers.
- qcodes: `Measurement` + `DataSaver.add_result` into its SQLite dataset, one
  `add_result` per block, every parameter `paramtype="array"` (its "Dataset Performance"
  notes: arrays are stored as binary blobs), the channels with the time array as setpoint,
  `write_in_background=True`.
- qcodes_fair: the same, then the dataset is exported block by block to one zstd Parquet
  file (t + one column per channel, row groups of 2^20 rows), the SQLite file and the
  Parquet file are fsynced, and both are hashed with sha256 (what capa's seal does).
- bluesky: `RunEngine` running `bluesky.plans.count([det], num=M / block)`; `det` is an
  ophyd `Device` of N+1 `ophyd.sim.SynSignal`s (a time array and one array per channel,
  each --block samples long) whose `trigger()` triggers every signal, so each event
  carries a fresh block (an ophyd Device only triggers its `trigger_value` components by
  itself; a SynSignal that is never triggered returns its first value forever). Every
  document goes to `suitcase.msgpack.Serializer` (numpy arrays packed as binary).
- bluesky_fair: the same plan; a document callback buffers the events' arrays and writes
  them as zstd Parquet (same columns and row groups as qcodes_fair), then fsyncs and
  hashes the file with sha256. Bluesky's documented route for high-rate detectors is "fly"
  scans whose data an external writer stores outside the document stream; this callback
  plays that writer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c

FRAMEWORKS = ("capa", "qcodes", "qcodes_fair", "bluesky", "bluesky_fair")
ROW_GROUP = 2**20
PERIOD_S = 1e-6


# ------------------------------------------------------------------ durability helpers
def fsync_file(path: Path) -> None:
    """fsync one file and the directory entry that names it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB reads."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def seal(paths: list[Path], out: Path) -> None:
    """fsync every file, then write and fsync a sha256 list (`sha256sum` format)."""
    for p in paths:
        fsync_file(p)
    lines = [f"{sha256_file(p)}  {p.relative_to(out)}\n" for p in paths]
    listing = out / "sha256sums.txt"
    listing.write_text("".join(lines))
    fsync_file(listing)


class WideParquet:
    """Buffers (t, v0..vN) blocks and writes zstd Parquet in row groups of ROW_GROUP rows."""

    def __init__(self, path: Path, channels: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.names = ["t", *(f"v{i}" for i in range(channels))]
        self.schema = pa.schema([(n, pa.float64()) for n in self.names])
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.buf: list[list[Any]] = [[] for _ in self.names]
        self.rows = 0

    def add(self, columns: list[Any]) -> None:
        """Append one block: the time array, then one array per channel."""
        for dst, arr in zip(self.buf, columns, strict=True):
            dst.append(arr)
        self.rows += len(columns[0])
        if self.rows >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one row group."""
        import numpy as np
        import pyarrow as pa

        if not self.rows:
            return
        arrays = [pa.array(np.concatenate(parts)) for parts in self.buf]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.buf = [[] for _ in self.names]
        self.rows = 0

    def close(self) -> None:
        """Write the rest and the footer."""
        self.flush()
        self.writer.close()


# ------------------------------------------------------------------ children (one per run)
def child_qcodes(out: Path, channels: int, samples: int, block: int, fair: bool) -> None:
    """Record with QCoDeS; the fair variant exports to zstd Parquet, fsyncs and hashes."""
    import numpy as np
    from qcodes.dataset import (
        Measurement,
        initialise_or_create_database_at,
        load_or_create_experiment,
    )
    from qcodes.parameters import ManualParameter

    db = out / "bench.db"
    initialise_or_create_database_at(db)
    exp = load_or_create_experiment("bench", sample_name="bench")
    t = ManualParameter("t", unit="s")
    chans = [ManualParameter(f"v{i}", unit="V") for i in range(channels)]
    meas = Measurement(exp=exp)
    meas.register_parameter(t, paramtype="array")
    for ch in chans:
        meas.register_parameter(ch, setpoints=(t,), paramtype="array")
    rng = np.random.default_rng(0)
    blocks = samples // block
    with meas.run(write_in_background=True) as saver:
        for b in range(blocks):
            times = (b * block + np.arange(block)) * PERIOD_S
            saver.add_result((t, times), *[(ch, rng.normal(0.0, 1.0, block)) for ch in chans])
    if not fair:
        return
    dataset = saver.dataset
    parquet = out / "export.parquet"
    writer = WideParquet(parquet, channels)
    step = max(1, ROW_GROUP // block)  # results (blocks) per read
    for start in range(1, blocks + 1, step):
        end = min(blocks, start + step - 1)
        data = dataset.get_parameter_data(*(f"v{i}" for i in range(channels)), start=start, end=end)
        tt = np.asarray(data["v0"]["t"]).reshape(-1)
        cols = [np.asarray(data[f"v{i}"][f"v{i}"]).reshape(-1) for i in range(channels)]
        writer.add([tt, *cols])
    writer.close()
    # QCoDeS keeps its SQLite file in WAL mode: move the log into the database file
    # first, so the hash is of what the file holds once the connections close.
    dataset.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seal([db, parquet], out)


def child_bluesky(out: Path, channels: int, samples: int, block: int, fair: bool) -> None:
    """Record with Bluesky + ophyd simulated signals; msgpack, or zstd Parquet (fair)."""
    import numpy as np
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Component, Device
    from ophyd.sim import SynSignal

    rng = np.random.default_rng(0)
    state = {"block": 0}

    def times() -> Any:
        b = state["block"]
        state["block"] += 1
        return (b * block + np.arange(block)) * PERIOD_S

    def noise() -> Any:
        return rng.normal(0.0, 1.0, block)

    def trigger_all(self: Any) -> Any:
        # Device.trigger() triggers only `trigger_value` components; trigger every
        # SynSignal so each one computes a fresh block for this event.
        status = None
        for name in self.component_names:
            st = getattr(self, name).trigger()
            status = st if status is None else status & st
        return status

    attrs: dict[str, Any] = {"t": Component(SynSignal, func=times, kind="hinted")}
    attrs.update(
        {f"v{i}": Component(SynSignal, func=noise, kind="hinted") for i in range(channels)}
    )
    if not os.environ.get("BENCH_STALE_BLUESKY"):
        # (set that variable to rebuild the old, unfair contestant and watch the
        # read-back's `fresh_blocks` turn False)
        attrs["trigger"] = trigger_all
    det = type("BenchDAQ", (Device,), attrs)(name="daq")
    state["block"] = 0  # a SynSignal evaluates its function once when it is built
    engine = RunEngine({})
    if fair:
        parquet = out / "bluesky.parquet"
        writer = WideParquet(parquet, channels)
        keys = ["daq_t", *(f"daq_v{i}" for i in range(channels))]

        def to_parquet(name: str, doc: dict[str, Any]) -> None:
            if name == "event":
                writer.add([np.asarray(doc["data"][k]) for k in keys])
            elif name == "stop":
                writer.close()

        engine.subscribe(to_parquet)
        engine(count([det], num=samples // block))
        seal([parquet], out)
    else:
        from suitcase.msgpack import Serializer

        serializer = Serializer(out)
        engine.subscribe(serializer)
        engine(count([det], num=samples // block))
        serializer.close()


# ------------------------------------------------------------------ verification children
def blocks_differ(first: Any, second: Any) -> bool:
    """True when two consecutive blocks of one channel are not the same values."""
    import numpy as np

    return bool(len(first) and len(second) and not np.array_equal(first, second))


def verify_parquet(path: Path, channels: int, block: int) -> dict[str, Any]:
    """Values per channel of a wide (t, v0..) Parquet file, and fresh data per block."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    head = pq.ParquetFile(path).read_row_group(0, columns=["v0"]).column(0).to_numpy()
    return {
        "values_per_channel": meta.num_rows,
        "channels": meta.num_columns - 1,
        "fresh_blocks": blocks_differ(head[:block], head[block : 2 * block]),
    }


def verify_sums(out: Path) -> bool:
    """Every file in sha256sums.txt still has the recorded hash."""
    listing = out / "sha256sums.txt"
    if not listing.exists():
        return False
    for line in listing.read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        if sha256_file(out / rel) != digest:
            return False
    return True


def verify_child(framework: str, out: Path, channels: int, block: int) -> dict[str, Any]:
    """Read one peer's output back (run in its own process, not timed)."""
    import numpy as np

    if framework == "qcodes_fair":
        res = verify_parquet(out / "export.parquet", channels, block)
        res["sha256_ok"] = verify_sums(out)
        return res
    if framework == "bluesky_fair":
        res = verify_parquet(out / "bluesky.parquet", channels, block)
        res["sha256_ok"] = verify_sums(out)
        return res
    if framework == "qcodes":
        from qcodes.dataset import initialise_or_create_database_at, load_by_id

        initialise_or_create_database_at(out / "bench.db")
        ds = load_by_id(1)
        counts = []
        head = None
        for i in range(channels):
            data = ds.get_parameter_data(f"v{i}")[f"v{i}"][f"v{i}"]
            arr = np.asarray(data)
            counts.append(int(arr.size))
            if i == 0:
                head = arr.reshape(-1)
        assert head is not None
        return {
            "values_per_channel": min(counts),
            "channels": len(counts),
            "fresh_blocks": blocks_differ(head[:block], head[block : 2 * block]),
        }
    if framework == "bluesky":
        import msgpack

        files = sorted(out.glob("*.msgpack"))
        events: list[dict[str, Any]] = []
        with files[0].open("rb") as fh:
            for name, doc in msgpack.Unpacker(fh, raw=False, object_hook=_msgpack_numpy_hook):
                if name == "event":
                    events.append(doc["data"])
                elif name == "event_page":
                    events.append({k: np.asarray(v[0]) for k, v in doc["data"].items()})
        per = [sum(np.asarray(e[f"daq_v{i}"]).size for e in events) for i in range(channels)]
        fresh = len(events) > 1 and blocks_differ(
            np.asarray(events[0]["daq_v0"]), np.asarray(events[1]["daq_v0"])
        )
        return {"values_per_channel": min(per), "channels": len(per), "fresh_blocks": fresh}
    raise SystemExit(f"no verification for {framework}")


def _msgpack_numpy_hook(obj: Any) -> Any:
    """Decode the numpy arrays suitcase-msgpack packs (via msgpack_numpy)."""
    try:
        import msgpack_numpy

        return msgpack_numpy.decode(obj)
    except ImportError:
        return obj


def child_main(args: argparse.Namespace) -> None:
    """Entry of a child process: record (or verify), then print one JSON line."""
    out = Path(args.out)
    if args.verify:
        print(json.dumps(verify_child(args.child, out, args.channels, args.block)))
        return
    base, _, variant = args.child.partition("_")
    fn = {"qcodes": child_qcodes, "bluesky": child_bluesky}[base]
    fn(out, args.channels, args.samples, args.block, variant == "fair")
    print(json.dumps({"ok": True}))


# ------------------------------------------------------------------ parent
def available(framework: str) -> str | None:
    """None if the framework imports here, else why not."""
    base = framework.split("_", maxsplit=1)[0]
    modules = {"qcodes": ["qcodes"], "bluesky": ["bluesky", "ophyd", "suitcase.msgpack"]}
    for mod in modules.get(base, []):
        try:
            __import__(mod)
        except ImportError as exc:
            return f"not installed here ({exc}); run through `nox -s bench`"
    return None


def run_capa(
    python: str, work: Path, channels: int, samples: int, block: int, rate: float
) -> dict[str, Any]:
    """One capa recording of `samples` per channel at `rate` (paced by the sample clock)."""
    seconds = samples / rate
    exp = c.write_experiment(work, c.block_rig(channels, rate, block), seconds)
    child, rss = c.run_capa(python, exp, work, c.capa_env(work / "home"))
    bundle = c.run_bundle(child.stdout)
    if child.returncode != 0 or bundle is None:
        raise SystemExit(f"capa run failed: {child.stderr[-800:] or child.stdout}")
    counted = c.parquet_samples(bundle)
    man = c.manifest_figures(bundle)
    checked = verify_capa(bundle, block)
    return {
        **checked,
        "wall_s": child.wall_s,
        "cpu_s": child.cpu_s,
        "max_rss_MB": rss,
        "bytes": c.bundle_bytes(bundle),
        "samples_total": counted["samples"],
        "values_per_channel": counted["samples"] // channels,
        "layout": counted["layout"],
        "dropped_rows": man["dropped_rows"],
        "sealed": man["bundle_status"] == "sealed",
    }


def verify_capa(bundle: Path, block: int) -> dict[str, Any]:
    """Read capa's bundle back as the peers' outputs are (untimed, in this process).

    sha256: every file listed in manifest.sha256 re-hashed here with hashlib (not with
    capa's own verifier). fresh_blocks: the first two blocks of channel v0 differ, read
    from the wide table (layout 2) or the long scalars.parquet (layout 1).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ok = True
    for line in (bundle / "manifest.sha256").read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            ok = ok and sha256_file(bundle / rel.lstrip("*")) == digest
    parts = sorted(bundle.glob("samples/*/part-*.parquet"))
    if parts:
        head = pq.ParquetFile(parts[0]).read_row_group(0, columns=["v0"]).column(0)
    else:
        table = pq.ParquetFile(bundle / "scalars.parquet").read_row_group(
            0, columns=["t_mono_ns", "channel", "value"]
        )
        table = table.filter(pc.equal(table["channel"].cast("string"), "v0"))
        head = table.sort_by("t_mono_ns")["value"]
    values = head.to_numpy()
    fresh = blocks_differ(values[:block], values[block : 2 * block])
    return {"sha256_ok": ok, "fresh_blocks": fresh}


def run_peer(framework: str, work: Path, channels: int, samples: int, block: int) -> dict[str, Any]:
    """One peer recording in a child process, then its read-back in another."""
    out = work / "data"
    out.mkdir(parents=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", framework]
    argv += ["--out", str(out), "--channels", str(channels), "--samples", str(samples)]
    argv += ["--block", str(block)]
    child, rss = c.run_capa_like(argv, work, c.capa_env(work / "home"))
    if child.returncode != 0:
        raise SystemExit(f"{framework} child failed: {child.stderr[-1500:]}")
    check = c.run_child([*argv, "--verify"], work, c.capa_env(work / "home"))
    if check.returncode != 0:
        raise SystemExit(f"{framework} read-back failed: {check.stderr[-1500:]}")
    verified = json.loads(check.stdout.strip().splitlines()[-1])
    return {
        "wall_s": child.wall_s,
        "cpu_s": child.cpu_s,
        "max_rss_MB": rss,
        "bytes": c.bundle_bytes(out),
        "samples_total": verified["values_per_channel"] * verified["channels"],
        **verified,
    }


def per_million(run: dict[str, Any]) -> dict[str, float]:
    """Wall s, CPU s and MB on disk per million samples."""
    m = run["samples_total"] / 1e6
    return {
        "wall_s_per_M": run["wall_s"] / m,
        "cpu_s_per_M": run["cpu_s"] / m,
        "MB_per_M": run["bytes"] / 1e6 / m,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2_000_000, help="per channel (M)")
    parser.add_argument("--block", type=int, default=10_000, help="samples per channel a block")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capa-rate", type=float, default=1_000_000, help="per channel, S/s")
    parser.add_argument("--capa-python", default=sys.executable, help="interpreter of capa")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--name", default="peers", help="result file name")
    parser.add_argument("--quick", action="store_true", help="M = 100 000, one repeat")
    parser.add_argument("--child", choices=FRAMEWORKS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.quick:
        args.samples, args.repeat = 100_000, 1
    frameworks = args.frameworks.split(",")
    print(
        f"{args.channels} channels x {args.samples:,} samples, block {args.block:,}; "
        f"capa paced at {args.capa_rate:,.0f} S/s per channel ({args.capa_python})",
        flush=True,
    )
    skipped = {fw: why for fw in frameworks if (why := available(fw))}
    for fw, why in skipped.items():
        print(f"{fw}: {why}")
    runs: dict[str, list[dict[str, Any]]] = {fw: [] for fw in frameworks if fw not in skipped}
    for i in range(args.repeat):
        per_channel = args.samples
        for fw, done in runs.items():  # interleaved; capa first, the peers then match it
            work = Path(tempfile.mkdtemp(prefix=f"capa-bench-{fw}-"))
            try:
                if fw == "capa":
                    run = run_capa(
                        args.capa_python,
                        work,
                        args.channels,
                        args.samples,
                        args.block,
                        args.capa_rate,
                    )
                    per_channel = run["values_per_channel"] // args.block * args.block
                else:
                    run = run_peer(fw, work, args.channels, per_channel, args.block)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            run.update(per_million(run))
            run["loadavg"] = c.loadavg()
            print(
                f"  {i + 1}/{args.repeat} {fw}: "
                + ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items()
                ),
                flush=True,
            )
            done.append(run)

    results: dict[str, Any] = {fw: {"skipped": why} for fw, why in skipped.items()}
    keys = ("wall_s_per_M", "cpu_s_per_M", "MB_per_M", "wall_s", "cpu_s", "max_rss_MB")
    for fw, rs in runs.items():
        med = {k: round(c.median([r[k] for r in rs]), 4) for k in keys}
        med["samples_total"] = [r["samples_total"] for r in rs]
        med["fresh_blocks"] = all(r.get("fresh_blocks", True) for r in rs)
        med["sha256_ok"] = all(r.get("sha256_ok", True) for r in rs)
        results[fw] = {"runs": rs, "median": med}
    # Same samples for everyone, checked from what each contestant's files hold.
    by_rep = [{fw: runs[fw][i]["samples_total"] for fw in runs} for i in range(args.repeat)]
    same = all(
        max(rep.values()) - min(rep.values()) <= args.channels * args.block for rep in by_rep
    )
    ratios: dict[str, dict[str, float]] = {}
    base = results.get("capa", {}).get("median")
    for fw in runs:
        peer = results[fw]["median"]
        if fw != "capa" and base:
            ratios[fw] = {k: round(peer[k] / base[k], 3) for k in keys[:3]}
    print(f"{'contestant':<13} {'wall s/M':>9} {'CPU s/M':>9} {'MB/M':>8} fresh sha256")
    for fw, res in results.items():
        if "median" in res:
            m = res["median"]
            print(
                f"{fw:<13} {m['wall_s_per_M']:>9.3f} {m['cpu_s_per_M']:>9.3f} "
                f"{m['MB_per_M']:>8.2f} {m['fresh_blocks']!s:>5} {m['sha256_ok']!s:>6}"
            )
    print(f"same samples for every contestant (within one block): {same}  {by_rep}")
    for fw, r in ratios.items():
        verdict = "capa ahead" if r["cpu_s_per_M"] > 1 else "capa behind"
        print(
            f"{fw} / capa: CPU {r['cpu_s_per_M']:.2f}x, wall {r['wall_s_per_M']:.2f}x, "
            f"bytes {r['MB_per_M']:.2f}x  ({verdict} on CPU)"
        )
    c.write_result(
        args.name,
        {
            "channels": args.channels,
            "samples_per_channel_asked": args.samples,
            "block": args.block,
            "capa_rate_per_channel": args.capa_rate,
            "capa_python": args.capa_python,
            "versions": versions(),
            "same_samples": same,
            "samples_by_repetition": by_rep,
            "results": results,
            "ratios_peer_to_capa": ratios,
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
