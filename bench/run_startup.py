"""Start-up of `capa validate` and of `capa run` up to its first sample (demo experiment).

    uv run python bench/run_startup.py [--repeat 10] [--quick]

bench/startup.py times `capa --help`, `capa version` and `capa plugins list`; this adds:
- `capa validate examples/demo/free_run.yaml` (load + schema + plugins + references), and
- `capa run` of a copy of the demo (examples/demo/free_run.yaml with a 1 s duration):
  from just before the process is spawned until (a) the conductor logs `conductor.running`
  in run.log and (b) the first sample's time — the manifest's `started_utc` (the run clock's
  origin) plus the smallest `t_mono_ns` of the bundle's sample tables. Both are wall-clock
  instants of the same machine, compared with the parent's `time.time()` at spawn.
- the phases in between, from the pre-run log `capa run` writes (~/.capa/logs, the child's
  own HOME here: `run.requested` carries when capa's code started, then
  `run.plugins_loaded`, `run.validated`, `run.planned`, `run.devices_opened`) and from the
  bundle's run.log (`conductor.running`):
    interpreter_s     spawn -> capa's first module runs (Python start-up, `import capa`)
    imports_s         -> `capa run` has parsed its arguments (click, command module, logging)
    plugins_s         -> every plugin loaded (entry points, plugin modules, components)
    validate_s        -> experiment, hardware and method files validated
    plan_s            -> run plan built and the runtime imported
    devices_open_s    -> every device open (the demo's simulators: pty servers, threads)
    bundle_running_s  -> bundle created, conductor armed and sampling (`conductor.running`)
    first_sample_s    -> the first sample's time on the run clock
  and `to_first_sample_without_open_s`: spawn -> first sample minus devices_open_s.
  The same marks carry the process's CPU seconds, so `*_cpu_s` splits CPU the same way
  (start_cpu_s: interpreter + imports up to `run.requested`); CPU does not inflate on a
  busy machine the way wall time does.
Every installed plugin is discovered and loaded by both commands.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as c


def time_validate(work: Path, repeat: int) -> list[float]:
    """Wall seconds of `capa validate` of the demo, `repeat` times."""
    times = []
    for _ in range(repeat):
        child = c.run_child(
            c.capa_argv("validate", "examples/demo/free_run.yaml"), c.ROOT, c.capa_env(work)
        )
        if child.returncode != 0:
            raise SystemExit(f"capa validate failed: {child.stderr or child.stdout}")
        times.append(child.wall_s)
    return times


PHASES = ("run.requested", "run.plugins_loaded", "run.validated", "run.planned")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _log_times(path: Path) -> dict[str, dict[str, Any]]:
    """event name -> its JSON record (first occurrence) of a JSON-lines log."""
    found: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        found.setdefault(rec.get("event", ""), rec)
    return found


def first_sample_ns(bundle: Path) -> int:
    """Smallest `t_mono_ns` of the bundle's sample tables (long `scalars` or wide ones)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # layout 2: samples/<device>/part-*.parquet (layout 1 had samples/*.parquet)
    tables = [
        bundle / "scalars.parquet",
        *sorted((bundle / "samples").glob("*.parquet")),
        *sorted((bundle / "samples").glob("*/part-*.parquet")),
    ]
    firsts = [
        pc.min(pq.read_table(p, columns=["t_mono_ns"])[0]).as_py()
        for p in tables
        if p.is_file() and "t_mono_ns" in pq.read_schema(p).names
    ]
    firsts = [t for t in firsts if t is not None]
    if not firsts:
        raise SystemExit(f"{bundle}: no sample table with t_mono_ns")
    return int(min(firsts))


def first_sample_once(work: Path) -> dict[str, Any]:
    """One demo run: seconds from spawn to each start-up phase and to the first sample."""
    folder = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(c.ROOT / "examples" / "demo", folder / "demo")
    exp = folder / "demo" / "free_run.yaml"
    text = exp.read_text().replace(
        "  id: capa.builtin.free_run\n", "  id: capa.builtin.free_run\n  config: {duration_s: 1}\n"
    )
    if "duration_s" not in text:
        raise SystemExit("examples/demo/free_run.yaml changed shape")
    exp.write_text(text)
    child = c.run_child(c.capa_argv("run", str(exp)), folder / "demo", c.capa_env(folder))
    bundle = c.run_bundle(child.stdout)
    if child.returncode != 0 or bundle is None:
        raise SystemExit(f"capa run failed: {child.stderr or child.stdout}")
    manifest = json.loads((bundle / "manifest.json").read_text())
    origin = datetime.fromisoformat(manifest["started_utc"]).timestamp()
    first = origin + first_sample_ns(bundle) / 1e9
    running = _epoch(_log_times(bundle / "run.log")["conductor.running"]["timestamp"])
    (prerun_log,) = (folder / ".capa" / "logs").glob("capa-*.log")
    pre = _log_times(prerun_log)
    missing = [p for p in (*PHASES, "run.devices_opened") if p not in pre]
    if missing:
        raise SystemExit(f"{prerun_log}: no {', '.join(missing)} (an older capa?)")
    main = float(pre["run.requested"]["main_epoch"])
    marks = [main] + [main + float(pre[p]["since_main_s"]) for p in PHASES]
    marks.append(main + float(pre["run.devices_opened"]["since_main_s"]))
    spawn = child.started_epoch
    names = ("interpreter_s", "imports_s", "plugins_s", "validate_s", "plan_s", "devices_open_s")
    phases = {
        n: round(b - a, 3) for n, a, b in zip(names, [spawn, *marks[:-1]], marks, strict=True)
    }
    cpu = [float(pre[p]["cpu_s"]) for p in (*PHASES, "run.devices_opened")]
    cpu_names = ("start_cpu_s", "plugins_cpu_s", "validate_cpu_s", "plan_cpu_s", "open_cpu_s")
    phases.update(
        {n: round(b - a, 3) for n, a, b in zip(cpu_names, [0.0, *cpu[:-1]], cpu, strict=True)}
    )
    phases["bundle_running_s"] = round(running - marks[-1], 3)
    phases["first_sample_s"] = round(first - running, 3)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        **phases,
        "to_run_clock_origin_s": round(origin - spawn, 3),
        "to_conductor_running_s": round(running - spawn, 3),
        "to_first_sample_s": round(first - spawn, 3),
        "to_first_sample_without_open_s": round(first - spawn - phases["devices_open_s"], 3),
        "process_wall_s": round(child.wall_s, 3),
        "process_cpu_s": round(child.cpu_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    work = Path(tempfile.mkdtemp(prefix="capa-bench-start-"))
    try:
        validate = time_validate(work, args.repeat)
        runs = []
        for _ in range(args.repeat):
            runs.append(first_sample_once(work))
            print(f"  capa run: {runs[-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: c.median([r[k] for r in runs]) for k in runs[0]}
    out = {
        "validate_demo_s": {
            "median": round(c.median(validate), 4),
            "min": round(min(validate), 4),
            "max": round(max(validate), 4),
        },
        "run_median": med,
        "run_max_to_first_sample_s": max(r["to_first_sample_s"] for r in runs),
        "runs": runs,
    }
    print(f"capa validate examples/demo/free_run.yaml: {out['validate_demo_s']}")
    print(f"capa run (demo) medians of {args.repeat}: {med}")
    c.write_result("run_startup", out)


if __name__ == "__main__":
    main()
