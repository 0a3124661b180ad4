"""Shared helpers of the benchmark scripts: machine facts, result files, `capa run` children.

Imported by the scripts in this folder (`python bench/x.py` puts bench/ on sys.path).
Nothing here asserts a timing: scripts print figures and write JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


def machine() -> dict[str, Any]:
    """The facts every result file carries: date, CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def write_result(name: str, data: dict[str, Any], results: Path | None = None) -> Path:
    """Write ``results/<name>.json`` atomically (temp file + replace), with machine facts."""
    folder = results or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    payload = {"name": name, "machine": machine(), "argv": sys.argv[1:], **data}
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def median(values: Sequence[float]) -> float:
    """Median (the figure the README reports for repeated runs)."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..100."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[k])


# ------------------------------------------------------------------ `capa run` children
def capa_env(home: Path) -> dict[str, str]:
    """The environment of a benchmark child: no CAPA_* overrides, a private HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPA_")}
    env["HOME"] = str(home)
    return env


def capa_argv(*args: str) -> list[str]:
    """``python -m capa ARGS`` with this interpreter (the session's venv)."""
    return [sys.executable, "-m", "capa", *args]


def block_rig(channels: int, rate_hz: float, block: int) -> str:
    """A rig with one hardware-clocked `capa.sim.signals` device of `channels` noise fields."""
    lines = [
        'name = "bench"',
        "[[devices]]",
        'name = "daq"',
        'adapter = "capa.sim.signals"',
        "[devices.params]",
        'resource = "daq"',
        'mode = "block"',
        f"sample_rate_hz = {rate_hz}",
        f"block_size = {block}",
        "[devices.params.signals]",
    ]
    # noise, so Parquet compression sees realistic entropy (a constant would flatter it)
    lines += [
        f'ch{i} = {{ kind = "noise", unit = "V", mean = 0.0, sigma = 1.0 }}'
        for i in range(channels)
    ]
    for i in range(channels):
        lines += [
            "[[channels]]",
            f'name = "v{i}"',
            'kind = "voltage"',
            'unit = "V"',
            f'source = {{ device = "daq", field = "ch{i}" }}',
        ]
    return "\n".join(lines) + "\n"


def write_experiment(folder: Path, rig: str, duration_s: float | None) -> Path:
    """Write rig.toml + experiment.yaml (free run, for `duration_s` or until stopped)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rig.toml").write_text(rig)
    config = f"{{duration_s: {duration_s}}}" if duration_s is not None else "{}"
    (folder / "experiment.yaml").write_text(
        "hardware: rig.toml\n"
        "procedure:\n"
        "  id: capa.builtin.free_run\n"
        f"  config: {config}\n"
        "operator: {id: bench}\n"
        "sample: {id: BENCH-1}\n"
    )
    return folder / "experiment.yaml"


@dataclass
class Child:
    """A finished child process: exit code, output, wall and CPU seconds (user + sys)."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    started_epoch: float


def wait_child(proc: subprocess.Popen[str], t0: float, epoch: float) -> Child:
    """Reap `proc` with wait4 so its own rusage (not the whole family's) is known."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    return Child(
        proc.returncode, out, err, wall, usage.ru_utime + usage.ru_stime, started_epoch=epoch
    )


def start_child(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[Any, float, float]:
    """Start a child; returns (Popen, perf_counter at start, epoch at start)."""
    epoch, t0 = time.time(), time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, t0, epoch


def run_child(argv: list[str], cwd: Path, env: dict[str, str]) -> Child:
    """Run a child to completion (output is small: capa prints a summary)."""
    proc, t0, epoch = start_child(argv, cwd, env)
    return wait_child(proc, t0, epoch)


def summary(stdout: str) -> dict[str, str]:
    """The `key: value` summary `capa run` prints."""
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and " " not in key:
            out[key] = value.strip()
    return out


def bundle_stats(bundle: Path) -> dict[str, Any]:
    """Figures of a sealed bundle: samples from the Parquet footers (layout 1 or 2),
    queue health from the manifest, and its size on disk."""
    man = manifest_figures(bundle)
    counted = parquet_samples(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    health = manifest.get("queue_health", {})
    return {
        **man,
        "rows": counted["samples"],  # samples (= long rows of layout 1)
        "layout": counted["layout"],
        "queue_capacity": health.get("queue_capacity"),
        "max_flush_s": health.get("max_flush_s"),
        "parquet_bytes": counted["parquet_bytes"],
        "bundle_bytes": bundle_bytes(bundle),
        "started_utc": manifest.get("started_utc"),
    }


def run_bundle(stdout: str) -> Path | None:
    """The bundle path from `capa run`'s summary, if it printed one."""
    path = summary(stdout).get("bundle")
    return Path(path) if path else None


def run_script(script: str, *args: str, python: str | None = None) -> int:
    """Run another bench script (reused as is) and stream its output; returns its exit code."""
    argv = [python or sys.executable, str(BENCH / script), *args]
    print(f"$ {' '.join(argv[1:])}", flush=True)
    return subprocess.run(argv, cwd=ROOT, check=False).returncode


# ------------------------------------------------------------- layout-agnostic figures
def parquet_samples(bundle: Path) -> dict[str, Any]:
    """Samples in a bundle, counted from Parquet footers only (both bundle layouts).

    Version 1 keeps every sample as one row of the long ``scalars.parquet``; version 2
    keeps polled channels there and hardware-clocked devices wide in
    ``samples/<device>/part-*.parquet`` (one row per tick, one column per channel). A
    wide table's samples are the non-null values of its value columns (not ``t_mono_ns``,
    ``*.raw`` or ``*.status``), from the row groups' statistics: the footer is read, the
    data never is, so counting a 120 M-row bundle costs milliseconds and no memory.
    """
    import pyarrow.parquet as pq

    out: dict[str, Any] = {
        "scalars_rows": 0,
        "wide_rows": 0,
        "wide_values": 0,
        "wide_parts": 0,
        "parquet_bytes": 0,
    }
    scalars = bundle / "scalars.parquet"
    if scalars.exists():
        out["scalars_rows"] = pq.ParquetFile(scalars).metadata.num_rows
        out["parquet_bytes"] += scalars.stat().st_size
    for part in sorted((bundle / "samples").glob("*/part-*.parquet")):
        meta = pq.ParquetFile(part).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        values = [
            i
            for i, n in enumerate(names)
            if n != "t_mono_ns" and not n.endswith((".raw", ".status"))
        ]
        out["wide_parts"] += 1
        out["wide_rows"] += meta.num_rows
        out["parquet_bytes"] += part.stat().st_size
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for i in values:
                col = rg.column(i)
                stats = col.statistics
                nulls = stats.null_count if stats is not None and stats.has_null_count else 0
                out["wide_values"] += col.num_values - nulls
    out["samples"] = out["scalars_rows"] + out["wide_values"]
    out["layout"] = "wide" if out["wide_parts"] else "long"
    return out


def manifest_figures(bundle: Path) -> dict[str, Any]:
    """What the manifest says, read defensively (version 1 and 2 differ in details)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    health = manifest.get("queue_health", {})
    workers = health.get("runtime", {}).get("workers", {})
    counts = manifest.get("counts", {})
    return {
        "bundle_schema_version": manifest.get("bundle_schema_version"),
        "run_status": manifest.get("run_status"),
        "bundle_status": manifest.get("bundle_status"),
        "device_samples": sum(w.get("samples", 0) for w in workers.values()),
        "dropped_rows": counts.get("dropped", {}).get("rows"),
        "queue_high_water": health.get("queue_high_water"),
        "loop_lag_p99_ms": health.get("runtime", {}).get("loop_lag", {}).get("p99_ms"),
        "in_flight_bytes": health.get("bytes"),
    }


def bundle_bytes(bundle: Path) -> int:
    """Bytes of every file in a bundle."""
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())


def interpreters(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=PYTHON`` pairs (``--python before=/x/.venv/bin/python``); default: this one.

    Several interpreters let one script compare two checkouts of capa in the same session
    with their runs interleaved (A B A B ...), so machine load hits both alike.
    """
    if not specs:
        return {"current": sys.executable}
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--python wants NAME=PATH, got {spec!r}")
        out[name] = os.path.abspath(path)  # children run in other folders
    return out


def loadavg() -> list[float]:
    """The 1 / 5 / 15-minute load averages (other jobs on a shared machine)."""
    return [round(x, 2) for x in os.getloadavg()]


def maxrss_mb(usage: Any) -> float:
    """ru_maxrss of a reaped child (KiB on Linux) in MB."""
    return round(usage.ru_maxrss * 1024 / 1e6, 1)


def run_capa(
    python: str, exp: Path, cwd: Path, env: dict[str, str], *extra: str
) -> tuple[Child, float]:
    """Run ``python -m capa run EXP`` to the end; (child, its peak RSS in MB)."""
    return run_capa_like([python, "-m", "capa", "run", str(exp), *extra], cwd, env)


def run_capa_like(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[Child, float]:
    """Run any child to the end, output drained; (child, its peak RSS in MB)."""
    epoch, t0 = time.time(), time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # communicate() would reap the child itself (losing its rusage): drain the pipes in
    # threads so a chatty child cannot block, then reap with wait4.
    import threading

    chunks: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    threads = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for th in threads:
        th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    for th in threads:
        th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    child = Child(
        proc.returncode,
        chunks.get("out", ""),
        chunks.get("err", ""),
        wall,
        usage.ru_utime + usage.ru_stime,
        started_epoch=epoch,
    )
    return child, maxrss_mb(usage)
