"""Start-up of `capa validate` and of `capa run` up to its first sample (demo experiment).

    uv run python bench/run_startup.py [--repeat 10] [--quick]

bench/startup.py times `capa --help`, `capa version` and `capa plugins list`; this adds:
- `capa validate examples/demo/free_run.yaml` (load + schema + plugins + references), and
- `capa run` of a copy of the demo (examples/demo/free_run.yaml with a 1 s duration):
  from just before the process is spawned until (a) the conductor logs `conductor.running`
  in run.log and (b) the first sample's time — the manifest's `started_utc` (the run clock's
  origin) plus the smallest `t_mono_ns` in scalars.parquet. Both are wall-clock instants
  of the same machine, compared with the parent's `time.time()` at spawn.
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


def first_sample_once(work: Path) -> dict[str, Any]:
    """One demo run; seconds from spawn to `conductor.running` and to the first sample."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

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
    t_first = pc.min(pq.read_table(bundle / "scalars.parquet", columns=["t_mono_ns"])[0])
    running = next(
        datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")).timestamp()
        for rec in map(json.loads, (bundle / "run.log").read_text().splitlines())
        if rec.get("event") == "conductor.running"
    )
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "to_run_clock_origin_s": round(origin - child.started_epoch, 3),
        "to_conductor_running_s": round(running - child.started_epoch, 3),
        "to_first_sample_s": round(origin + t_first.as_py() / 1e9 - child.started_epoch, 3),
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
